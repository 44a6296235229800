-- wrk request from the environment: WRK_METHOD, WRK_BODY (JSON), WRK_AUTH (Authorization header).
wrk.method = os.getenv("WRK_METHOD") or "POST"
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
