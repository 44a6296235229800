-- wrk: refresh with rotation. Each connection keeps its own family: the refresh token a
-- response carries is the next request's (a token used twice would be reuse). Initial tokens,
-- one per line, from the file named by WRK_TOKENS (threads x connections of them).
local queue = {}
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  local per = tonumber(os.getenv("WRK_PER_THREAD"))
  local n = 0
  for line in io.lines(os.getenv("WRK_TOKENS")) do
    n = n + 1
    if n > (id - 1) * per and n <= id * per then
      table.insert(queue, line)
    end
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  -- wrk may ask for a request it never sends (its dynamic-script probe): spare tokens cover it;
  -- an empty queue sends a bad token, which shows as non-2xx.
  local token = table.remove(queue, 1) or "exhausted"
  return wrk.format(nil, "/api/token/refresh/", nil, '{"refresh": "' .. token .. '"}')
end

function response(status, headers, body)
  local token = body:match('"refresh":"([^"]+)"')
  if token then
    table.insert(queue, token)
  end
end
