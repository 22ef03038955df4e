/**
 * Building blocks of the policy schema: the name, header and endpoint patterns, and the helpers
 * that give a subschema the policy's own error wording.
 *
 * Imports neither fastify, undici nor ioredis.
 */
import { type TSchema, Type } from '@sinclair/typebox';

/** Names of backends, models and variants: what fits in a URL path segment and a metric label. */
export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$';
/** An HTTP header name (RFC 9110 token), matched case-insensitively. */
export const HEADER_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$";
/** An endpoint: scheme, host and port, no path. */
export const ENDPOINT_PATTERN = '^https?://[^/?#\\s]+/?$';

/** Shown instead of the validator's generic message when a value fails this schema. */
export function hint<T extends TSchema>(schema: T, errorMessage: string): T {
  return { ...schema, errorMessage };
}

export const Name = (what: string) =>
  hint(
    Type.String({ pattern: NAME_PATTERN, description: `name of a ${what}` }),
    `must be a ${what} name (letters, digits, '_', '.', '-'; at most 128)`,
  );

/** A map keyed by names; a key that is not a valid name is reported as unknown. */
export const NamedMap = <T extends TSchema>(value: T, description: string) =>
  Type.Record(Type.String({ pattern: NAME_PATTERN }), value, { additionalProperties: false, description });

export const Percent = (description: string) => Type.Number({ minimum: 0, maximum: 100, description });
