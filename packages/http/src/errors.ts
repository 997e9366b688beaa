import type { ErrorBody } from '@parley/contracts';

/**
 * One class per kind of failure a client may see, each with api.md's stable code and status.
 * Anything else that escapes a handler is an internal error: logged, answered as 500 with no detail.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }

  toBody(): ErrorBody {
    return {
      error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) },
    };
  }
}

export class InvalidRequest extends AppError {
  constructor(message = 'The request is invalid', details?: unknown) {
    super(400, 'invalid_request', message, details);
  }
}
export class Unauthorized extends AppError {
  constructor(message = 'Authentication required', code = 'unauthorized') {
    super(401, code, message);
  }
}
export class Forbidden extends AppError {
  constructor(message = 'Not allowed') {
    super(403, 'forbidden', message);
  }
}
export class NotFound extends AppError {
  constructor(message = 'Not found') {
    super(404, 'not_found', message);
  }
}
export class Conflict extends AppError {
  constructor(code = 'conflict', message = 'Conflict') {
    super(409, code, message);
  }
}
export class PayloadTooLarge extends AppError {
  constructor(message = 'Payload too large') {
    super(413, 'payload_too_large', message);
  }
}
export class RateLimited extends AppError {
  constructor(
    readonly retryAfterSeconds: number,
    message = 'Too many requests',
  ) {
    super(429, 'rate_limited', message);
  }
}
export class Unavailable extends AppError {
  constructor(message = 'Service temporarily unavailable', options?: { cause?: unknown }) {
    super(503, 'unavailable', message, undefined, options);
  }
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: { code, message, ...(details === undefined ? {} : { details }) } };
}
