/**
 * A body longer than the reader takes. `declared` is the Content-Length when that alone refused the body (none of
 * it was read); null when the body was cut off while streaming.
 */
export class BodyTooLarge extends Error {
  constructor(what: string, readonly max: number, readonly declared: number | null) {
    super(declared === null ? `${what} answered more than the ${max} bytes read` : `${what} answered ${declared} bytes, more than the ${max} read`);
    this.name = 'BodyTooLarge';
  }
}

/**
 * A body cut by `until` (truncate mode) before it ended: `partial` is what had arrived (a character cut at the end
 * is left out).
 */
export class BodyCut extends Error {
  constructor(readonly partial: string) {
    super('the body did not end in time');
    this.name = 'BodyCut';
  }
}

/**
 * An answer's body as text, read as it streams and never past `max` bytes: the rest is never downloaded (the
 * connection is closed), whatever the server sends. Servers the API calls are chosen by users and may answer anything.
 * - `{ over: 'fail', what }`: a longer body throws BodyTooLarge; one whose Content-Length is already past `max` is not
 *   read at all. `what` names the request in the error.
 *   `take`, when given, is told each chunk's size as it arrives (after the check against `max`) and may throw to stop
 *   reading there: a budget shared by several bodies.
 * - `{ over: 'truncate' }`: the first `max` bytes (a character cut at the end is left out). With `until`, reading
 *   stops when it aborts: BodyCut with what had arrived (a server that sends its status and never ends its body).
 */
export async function readBodyAtMost(res: Response, max: number,
  o: { over: 'fail'; what: string; take?: (bytes: number) => void } | { over: 'truncate'; until?: AbortSignal }): Promise<string> {
  if (o.over === 'fail') {
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > max) {
      void res.body?.cancel().catch(() => undefined);
      throw new BodyTooLarge(o.what, max, declared);
    }
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parts: string[] = [];
  let bytes = 0;
  const until = o.over === 'truncate' ? o.until : undefined;
  let stop: (() => void) | undefined;
  const stopped = until ? new Promise<'stopped'>((resolve) => {
    stop = () => resolve('stopped');
    if (until.aborted) stop();
    else until.addEventListener('abort', stop, { once: true });
  }) : null;
  try {
    while (bytes < max || o.over === 'fail') {
      const read = stopped ? await Promise.race([reader.read(), stopped]) : await reader.read();
      if (read === 'stopped') throw new BodyCut(parts.join(''));
      const { done, value } = read;
      if (done) {
        parts.push(decoder.decode());
        break;
      }
      bytes += value.byteLength;
      if (bytes > max) {
        if (o.over === 'fail') throw new BodyTooLarge(o.what, max, null);
        // streaming: an incomplete character at the cut stays in the decoder and is dropped
        parts.push(decoder.decode(value.subarray(0, value.byteLength - (bytes - max)), { stream: true }));
        break;
      }
      if (o.over === 'fail') o.take?.(value.byteLength);
      parts.push(decoder.decode(value, { stream: true }));
    }
    return parts.join('');
  } finally {
    if (stop) until?.removeEventListener('abort', stop);
    // stops the download where it is (the connection is closed)
    void reader.cancel().catch(() => undefined);
  }
}
