/**
 * The one normalisation of a username or e-mail address for uniqueness and lookup (issue 23,
 * finding 3): the claim subject, the projection's unique `*_lower` columns and every lookup use it,
 * so they cannot disagree. Before, claims lower-cased with JavaScript and the index with
 * PostgreSQL's `lower()`, which differ (`İ` is `i̇` in one and `i` in the other): two registrations
 * that both won their claims collided in the unique index and stopped the users projector.
 *
 * NFKC (compatibility forms such as fullwidth letters become their plain letters), then a case
 * fold approximated by upper- then lower-casing (`ß` and `SS` meet as `ss`), then NFKC again.
 */
export function identityKey(value: string): string {
  return value.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
}
