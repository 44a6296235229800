// A frontend's first steps with Tessera through a client generated from openapi/openapi.json
// (openapi-typescript + openapi-fetch). It is only type-checked (`npm run check`): a change of
// the document that breaks this flow fails CI.
import createClient from "openapi-fetch";
import type { components, paths } from "./tessera";

type Schemas = components["schemas"];
type User = Schemas["User"];
/** Every error body the document names: DRF's field errors, `{detail, code}`, SimpleJWT's. */
type Refusal = Schemas["ValidationError"] | Schemas["Error"] | Schemas["TokenError"];

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });

/** SimpleJWT's refusal of a Bearer token, with one message per token class. */
function isTokenError(error: Refusal): error is Schemas["TokenError"] {
  const messages: unknown = "messages" in error ? error.messages : undefined;
  return typeof error.detail === "string" && Array.isArray(messages) && messages.every((m) => typeof m === "object");
}

/** `{detail, code}`: every refusal that is not about fields. */
function isDetail(error: Refusal): error is Schemas["Error"] {
  return typeof error.detail === "string" && typeof error.code === "string";
}

/** One line for any refusal, read through the documented shapes only. */
export function describe(error: Refusal): string {
  if (isTokenError(error)) {
    return [`${error.code}: ${error.detail}`, ...error.messages.map((m) => `${m.token_type}: ${m.message}`)].join("; ");
  }
  if (isDetail(error)) {
    return `${error.code}: ${error.detail}`;
  }
  return Object.entries(error)
    .map(([field, messages]) => `${field}: ${(messages ?? []).join(" ")}`)
    .join("; ");
}

/** Registers, logs in (SimpleJWT's pair) and reads the account back with the access token. */
export async function registerLogInAndReadMe(username: string, password: string): Promise<User> {
  const registered = await client.POST("/auth/users/", {
    body: { username, password, email: `${username}@example.com` },
  });
  if (registered.error !== undefined) {
    throw new Error(`registration refused: ${describe(registered.error)}`);
  }
  const id: string | number = registered.data.id;

  const pair = await client.POST("/api/token/", { body: { username, password } });
  if (pair.error !== undefined) {
    if (pair.response.status === 429) {
      const wait = pair.response.headers.get("Retry-After");
      throw new Error(`throttled, retry in ${wait} s`);
    }
    throw new Error(`login refused: ${describe(pair.error)}`);
  }
  const access: string = pair.data.access;
  // Absent when the refresh token travels only in its cookie (`jwt.cookie.omit_from_body`).
  const refresh: string | undefined = pair.data.refresh;

  const me = await client.GET("/auth/users/me/", {
    headers: { Authorization: `Bearer ${access}` },
  });
  if (me.error !== undefined) {
    throw new Error(`me refused: ${describe(me.error)}`);
  }
  if (me.data.id !== id || refresh?.length === 0) {
    throw new Error("another account answered");
  }
  return me.data;
}

/** The opaque-key flow: Djoser's login answers 400 `non_field_errors` for bad credentials. */
export async function logInForAKey(username: string, password: string): Promise<string> {
  const login = await client.POST("/auth/token/login/", { body: { username, password } });
  if (login.error !== undefined) {
    const fields = login.error as Schemas["ValidationError"];
    throw new Error(fields.non_field_errors?.join(" ") ?? describe(login.error));
  }
  return login.data.auth_token;
}

/** The generated types are real, not `any`: each of these must fail to compile. */
export function mistakesTheTypesCatch(): void {
  // @ts-expect-error `password` is required to register.
  void client.POST("/auth/users/", { body: { username: "bob" } });
  // @ts-expect-error there is no such path.
  void client.GET("/auth/user/me/");
  // @ts-expect-error `/api/token/` answers a pair, not a user.
  void client.POST("/api/token/", { body: { username: "bob", password: "x" } }).then((r) => r.data?.email);
}
