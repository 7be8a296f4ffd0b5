/**
 * The one error type Earshot shows to people. Its message is a single line that says what is
 * wrong and what to do next ("… is not a WAV file; export it as WAV or …"), so the worker can
 * forward it to the UI and the CLI can print it without a stack trace.
 *
 * `code` is a stable machine-readable tag (e.g. 'safetensors/bad-offsets') for tests and for
 * callers that want to react to one failure without matching on message text.
 */
export class EarshotError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = 'EarshotError';
    this.code = code;
  }
}

/** True when `err` is an EarshotError, optionally with the given code. */
export function isEarshotError(err: unknown, code?: string): err is EarshotError {
  return err instanceof EarshotError && (code === undefined || err.code === code);
}

/** Short, single-line rendering of an arbitrary value for error messages. */
export function describeValue(value: unknown, maxLength = 60): string {
  let text: string;
  if (value === undefined) text = 'undefined';
  else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  text = text.replace(/\s+/g, ' ');
  return text.length > maxLength ? `${text.slice(0, maxLength - 1)}…` : text;
}
