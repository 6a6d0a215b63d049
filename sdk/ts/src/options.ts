// Checking a configuration: every check that fails is named, in one TypeError.

/** A check of a configuration: whether it fails, and what to say when it does. */
export type Check = readonly [failed: boolean, message: string];

/** The messages of the checks that fail, each after prefix (e.g. 'exchange: config: '). */
export function failing(prefix: string, checks: readonly Check[]): string[] {
  return checks.filter(([failed]) => failed).map(([, message]) => prefix + message);
}

/** Throws one TypeError naming every problem; returns when there is none. */
export function refuse(problems: readonly string[]): void {
  if (problems.length > 0) throw new TypeError(problems.join('; '));
}
