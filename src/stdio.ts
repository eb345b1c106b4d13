/**
 * The stdio transport: one JSON-RPC message per line on stdin, answers on stdout.
 *
 * In place of the SDK's, which drops a line its schema rejects without a word (the caller waits forever)
 * and closes the whole transport when one line exceeds its buffer. Here every line that is not a valid
 * message is answered with a JSON-RPC error (see jsonrpc.ts), an oversized line is skipped and answered,
 * and nothing but JSON-RPC is ever written to stdout.
 */
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import {
  checkMessage,
  errorResponse,
  INVALID_REQUEST,
  type JsonRpcErrorResponse,
  parseError,
} from './jsonrpc.js';

/** Default longest line: 4 MiB is far above any real call and bounds what one line can hold in memory. */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

export interface StdioOptions {
  maxLineBytes?: number;
  /** Told about each malformed line (for the log); never about valid ones. */
  onReject?: (reason: string) => void;
}

export class GuardedStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  readonly #stdin: NodeJS.ReadableStream;
  readonly #stdout: NodeJS.WritableStream;
  readonly #max: number;
  readonly #onReject: ((reason: string) => void) | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Inside a line that is already too long: dropped up to its newline, then answered once. */
  #skipping = false;
  #closed = false;

  constructor(
    stdin: NodeJS.ReadableStream = process.stdin,
    stdout: NodeJS.WritableStream = process.stdout,
    opts: StdioOptions = {},
  ) {
    this.#stdin = stdin;
    this.#stdout = stdout;
    this.#max = opts.maxLineBytes ?? MAX_LINE_BYTES;
    this.#onReject = opts.onReject;
  }

  async start(): Promise<void> {
    this.#stdin.on('data', this.#onData);
    this.#stdin.on('error', this.#onStreamError);
    // A host that closed our stdout (EPIPE) must not crash the process: the server just stops.
    this.#stdout.on('error', this.#onStreamError);
  }

  readonly #onStreamError = (error: Error) => {
    this.onerror?.(error);
    void this.close();
  };

  readonly #onData = (chunk: Buffer | string) => {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    // A newline byte never occurs inside a multi-byte UTF-8 character, so splitting bytes is safe.
    for (let nl = buf.indexOf(0x0a); nl !== -1; nl = buf.indexOf(0x0a)) {
      this.#take(buf.subarray(0, nl));
      this.#endLine();
      buf = buf.subarray(nl + 1);
    }
    if (buf.length) this.#take(buf);
  };

  #take(part: Buffer): void {
    if (this.#skipping || part.length === 0) return;
    this.#pendingBytes += part.length;
    if (this.#pendingBytes > this.#max) {
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#skipping = true;
      return;
    }
    this.#pending.push(part);
  }

  #endLine(): void {
    if (this.#skipping) {
      this.#skipping = false;
      this.#reject(
        errorResponse(null, INVALID_REQUEST, `Invalid Request: a message is at most ${this.#max} bytes`),
        'line too long',
      );
      return;
    }
    const line = Buffer.concat(this.#pending, this.#pendingBytes).toString('utf8').replace(/\r$/, '');
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      this.#reject(parseError(Buffer.byteLength(line)), 'not JSON');
      return;
    }
    const checked = checkMessage(value);
    if (checked.ok) {
      try {
        this.onmessage?.(checked.message);
      } catch (e) {
        this.onerror?.(e as Error);
      }
      return;
    }
    this.#onReject?.(checked.reason);
    if (checked.reply) void this.#write(checked.reply);
  }

  #reject(reply: JsonRpcErrorResponse, reason: string): void {
    this.#onReject?.(reason);
    void this.#write(reply);
  }

  async send(message: JSONRPCMessage): Promise<void> {
    await this.#write(message);
  }

  #write(message: JSONRPCMessage | JsonRpcErrorResponse): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.#stdout.write(`${JSON.stringify(message)}\n`)) resolve();
      else this.#stdout.once('drain', resolve);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stdin.off('data', this.#onData);
    this.#stdin.off('error', this.#onStreamError);
    this.#stdout.off('error', this.#onStreamError);
    this.#pending = [];
    this.onclose?.();
  }
}
