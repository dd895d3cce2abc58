/**
 * A small JSON request to the cluster for the operator commands (`members`, `agg`): tries each
 * endpoint in turn, and turns an error reply into the API error it stands for.
 */
import { errorFromResponse } from "../../api/errors.js";
import { EndpointsUnreachableError } from "../../client/errors.js";
import { clientConfigFromArgs, withClientErrors, type ClientArgs } from "../options.js";
import { httpFetch, type HttpAnswer } from "../../net/http-fetch.js";

export async function adminRequest<T>(
  args: ClientArgs,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const config = clientConfigFromArgs(args);
  return withClientErrors(async () => {
    const failures: string[] = [];
    for (const base of config.endpoints) {
      let res: HttpAnswer;
      try {
        res = await httpFetch(new URL(path, base), {
          method,
          headers: { authorization: `Bearer ${config.token}`, "content-type": "application/json" },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(args.timeout),
        });
      } catch (err) {
        failures.push(`${base}: ${(err as Error).message}`);
        continue;
      }
      const text = await res.text();
      if (res.ok) return JSON.parse(text) as T;
      let code: string | undefined;
      let message = text.slice(0, 500);
      try {
        const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
        code = parsed.error?.code;
        message = parsed.error?.message ?? message;
      } catch {
        // Keep the raw text.
      }
      if (res.status === 503) {
        failures.push(`${base}: ${message}`);
        continue;
      }
      throw errorFromResponse(res.status, code, message);
    }
    throw new EndpointsUnreachableError(config.endpoints, failures.length, new Error(failures.join("; ")));
  });
}
