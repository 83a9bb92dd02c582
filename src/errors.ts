/**
 * @fileoverview The one error type users see: a problem and its fix.  The
 * CLI prints it as a single line and exits with its code; nothing else
 * (native crash, stack trace) may reach the user for a bad input.
 */

/** Exit codes of the kjit command. */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  BAD_INPUT: 2,
  KERNEL_FAULT: 3,
} as const;

export class KjitError extends Error {
  readonly problem: string;
  readonly fix: string;
  readonly exitCode: number;

  constructor(problem: string, fix: string, exitCode: number = ExitCode.BAD_INPUT, options?: { cause?: unknown }) {
    super(`${problem} (fix: ${fix})`, options);
    this.name = 'KjitError';
    this.problem = problem;
    this.fix = fix;
    this.exitCode = exitCode;
  }

  /** The one line the CLI prints. */
  line(): string {
    return `kjit: ${this.problem} — fix: ${this.fix}`;
  }
}

/** First line of a (possibly multi-line) LLVM message, trimmed. */
export function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? text.trim();
}
