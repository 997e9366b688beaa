/** Sum of one metric over the label sets whose text contains `labelFilter`, from a /metrics page. */
export function metricSum(text: string, name: string, labelFilter = ''): number {
  return [...text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\d+(?:\\.\\d+)?)`, 'gm'))]
    .filter((m) => (m[1] ?? '').includes(labelFilter))
    .reduce((n, m) => n + Number(m[2]), 0);
}
