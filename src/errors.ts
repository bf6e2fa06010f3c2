/**
 * One error class for everything Herald reports, with a code from a registry that fixes the HTTP
 * status and whether a caller may retry. Driver errors never cross an adapter: they ride as `cause`.
 */

export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, retryable: false },
  UNAUTHORIZED: { status: 401, retryable: false },
  FORBIDDEN: { status: 403, retryable: false },
  NOT_FOUND: { status: 404, retryable: false },
  CONFLICT: { status: 409, retryable: false },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false },
  CONFIG_INVALID: { status: 500, retryable: false },
  STREAM_ENTRY_INVALID: { status: 500, retryable: false },
  /** a planner's generation was re-planned by another owner: it appends nothing more */
  PLAN_SUPERSEDED: { status: 409, retryable: false },
  DEPENDENCY_UNAVAILABLE: { status: 503, retryable: true },
  CLICKHOUSE_FAILED: { status: 503, retryable: true },
  CHANNEL_FAILED: { status: 502, retryable: true },
  INTERNAL: { status: 500, retryable: false },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldError {
  field: string;
  error: string;
}

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  /** Extra body fields for API answers: the offending field(s), the current status on a 409, … */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HeraldError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.details = details;
  }

  /** 400 naming every bad field; `field` is the first one so simple clients can show one message. */
  static invalid(errors: FieldError[]): HeraldError {
    const first = errors[0] ?? { field: 'body', error: 'invalid' };
    const details: Record<string, unknown> = { field: first.field };
    if (errors.length > 1) details.fields = errors;
    return new HeraldError('BAD_REQUEST', `${first.field}: ${first.error}`, details);
  }
}

export function isHeraldError(err: unknown): err is HeraldError {
  return err instanceof HeraldError;
}
