/**
 * Structured logs on stderr: one line per event, `logfmt` for people or JSON for collectors.
 * Repeated warnings (a peer that keeps failing) are the caller's to rate-limit.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(opts: {
  level: LogLevel;
  format: LogFormat;
  base?: Record<string, unknown>;
  write?: (line: string) => void;
  now?: () => Date;
}): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const now = opts.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < ORDER[opts.level]) return;
    const record = { ts: now().toISOString(), level, msg, ...opts.base, ...fields };
    if (opts.format === "json") {
      write(JSON.stringify(record));
      return;
    }
    const rest = Object.entries({ ...opts.base, ...fields })
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(" ");
    write(`${record.ts} ${level.toUpperCase().padEnd(5)} ${msg}${rest ? " " + rest : ""}`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

function formatValue(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return /[\s"=]/.test(s ?? "") ? JSON.stringify(s) : String(s);
}
