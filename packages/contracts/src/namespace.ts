/**
 * PARLEY_NAMESPACE prefixes every stream name, subject and Redis key, so that two installations
 * (or two test files) can share one NATS server and one Redis. It must be valid in all three:
 * stream names forbid `.`, `*`, `>` and whitespace, subjects treat `.` as a separator.
 */
export const NAMESPACE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

export function assertNamespace(ns: string): string {
  if (!NAMESPACE_PATTERN.test(ns)) {
    throw new Error(
      `PARLEY_NAMESPACE "${ns}" is invalid: use 1 to 32 characters of a-z, 0-9, "_" or "-", starting with a letter`,
    );
  }
  return ns;
}

/**
 * The scratch namespace `backup:verify` restores an archive into: fixed per installation, so the
 * backup job's bus permissions can name its streams (a random one could not be allowed ahead of
 * time). Not `<ns>_…`: stream names of the form `<ns>_<key>` belong to the installation itself.
 */
export function verifyNamespace(ns: string): string {
  return `${ns.slice(0, 26)}verify`;
}
