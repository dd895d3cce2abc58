/**
 * Routes that other parts of the agent add to the API server without editing it: the health,
 * ring, sensor and series endpoints of the dashboard, and the dashboard's static files under
 * `/ui/`. A route's handler sees only what it needs of the request and returns a plain reply;
 * errors of `errors.ts` become their usual JSON answers.
 */
import type { IncomingHttpHeaders } from "node:http";

export interface ExtraRequest {
  readonly method: string;
  /** What follows `?`, still encoded. */
  readonly query: string;
  /** For a prefix route: the part of the path after the template, still encoded. */
  readonly rest: string;
  readonly headers: IncomingHttpHeaders;
  readonly signal: AbortSignal;
}

export interface ExtraReply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string | Uint8Array;
}

export type ExtraHandler = (req: ExtraRequest) => Promise<ExtraReply>;

export interface ExtraRoute {
  /** An exact path, or with `prefix` every path that starts with it (the metric label is `<template>*`). */
  readonly template: string;
  readonly prefix?: boolean;
  /** Needs a bearer token (the read-only token is enough for GET and HEAD). */
  readonly authenticated: boolean;
  readonly methods: Partial<Record<string, ExtraHandler>>;
}

export function json(status: number, value: unknown, headers: Record<string, string> = {}): ExtraReply {
  return {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
    body: JSON.stringify(value),
  };
}
