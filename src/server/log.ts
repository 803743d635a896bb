import { pino } from "pino";

/**
 * Structured logs (pino): one JSON object per line on stdout. Callers pass
 * fields, never secrets; authorization headers and tokens are redacted anyway.
 */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function wrap(logger: pino.Logger): Logger {
  return {
    debug: (message, fields) => logger.debug(fields ?? {}, message),
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
    error: (message, fields) => logger.error(fields ?? {}, message),
    child: (fields) => wrap(logger.child(fields)),
  };
}

export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  return wrap(
    pino({
      level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
      redact: {
        paths: [
          "authorization",
          "token",
          "*.authorization",
          "*.token",
          "headers.authorization",
          "connectionParams",
        ],
        censor: "[redacted]",
      },
    }),
  );
}
