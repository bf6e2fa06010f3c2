/**
 * `COPY … TO STDOUT` for the planner's pages, as a pg "submittable" that takes the connection's socket
 * over for the duration of the COPY: it removes pg's own data listener, reads the CopyOutResponse /
 * CopyData / CopyDone messages itself, and hands everything after them (CommandComplete, ReadyForQuery)
 * or an ErrorResponse back to pg, whose parser then settles the query as usual (handleError /
 * handleReadyForQuery below). The CopyData payloads go, as ranges of the socket's own chunks, to a
 * `CopySink`: the planner's decoder (copy-binary.ts) parses rows where they arrived, with no Buffer per
 * row or per message. pg-copy-streams makes a Buffer of every row and concatenates them again, which
 * profiled at about a quarter of the planner's time.
 */
import type { Socket } from 'node:net';

const COPY_DATA = 0x64; // 'd'
const COPY_OUT_RESPONSE = 0x48; // 'H'
const ERROR_RESPONSE = 0x45; // 'E'
// Messages the server may send in the middle of a COPY (protocol-flow.html#PROTOCOL-COPY)
const NOTICE = 0x4e; // 'N'
const NOTIFICATION = 0x41; // 'A'
const PARAMETER_STATUS = 0x53; // 'S'

interface PgConnection {
  stream: Socket;
  query(text: string): void;
}

type DataHandler = (chunk: Buffer) => void;

/** Takes a COPY's data in order, as byte ranges of buffers it must not keep; `finish` gives the result. */
export interface CopySink<T> {
  feed(buf: Buffer, start: number, end: number): void;
  finish(): T;
}

export class CopyOut<T> {
  readonly done: Promise<T>;
  private resolve!: (b: T) => void;
  private reject!: (err: Error) => void;
  private connection: PgConnection | null = null;
  private pgHandler: DataHandler | null = null;
  private readonly onData: DataHandler = (chunk) => this.take(chunk);
  /** bytes of a message header (code + length) split across socket chunks */
  private head: Buffer | null = null;
  /** payload bytes still to come of the current message, and whether they are CopyData */
  private remaining = 0;
  private copying = false;
  private finished = false;
  private failure: Error | null = null;

  constructor(
    readonly text: string,
    private readonly sink: CopySink<T>,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Called by pg when the query's turn comes on the client. */
  submit(connection: PgConnection): void {
    this.connection = connection;
    const listeners = connection.stream.listeners('data') as DataHandler[];
    if (listeners.length !== 1) throw new Error(`COPY OUT: expected pg's one data listener, found ${listeners.length}`);
    this.pgHandler = listeners[0]!;
    connection.stream.removeListener('data', this.pgHandler);
    connection.stream.on('data', this.onData);
    connection.query(this.text);
  }

  private take(chunk: Buffer): void {
    let buf = chunk;
    if (this.head !== null) {
      buf = Buffer.concat([this.head, chunk]);
      this.head = null;
    }
    let pos = 0;
    const n = buf.length;
    while (pos < n) {
      if (this.remaining > 0) {
        const end = Math.min(n, pos + this.remaining);
        if (this.copying && this.failure === null) this.feed(buf, pos, end);
        this.remaining -= end - pos;
        pos = end;
        continue;
      }
      if (n - pos < 5) {
        this.head = Buffer.from(buf.subarray(pos));
        return;
      }
      const code = buf[pos]!;
      if (code !== COPY_DATA && code !== COPY_OUT_RESPONSE && code !== NOTICE && code !== NOTIFICATION && code !== PARAMETER_STATUS) {
        // CopyDone, or an ErrorResponse: what follows is pg's to parse.
        this.finished = code !== ERROR_RESPONSE;
        this.detach(buf.subarray(pos));
        return;
      }
      this.remaining = buf.readUInt32BE(pos + 1) - 4;
      this.copying = code === COPY_DATA;
      pos += 5;
    }
  }

  private feed(buf: Buffer, from: number, to: number): void {
    try {
      this.sink.feed(buf, from, to);
    } catch (err) {
      // Bad data: the rest of the COPY is still read off the socket (so the connection stays in step),
      // and the query fails once pg has seen its end.
      this.failure = err as Error;
    }
  }

  private detach(rest: Buffer): void {
    const c = this.connection!;
    c.stream.removeListener('data', this.onData);
    c.stream.on('data', this.pgHandler!);
    if (rest.length > 0) this.pgHandler!(rest);
  }

  // pg calls these on the active query. An error settles at once, as pg's own queries do: a lost
  // connection brings no ReadyForQuery.
  handleError(err: Error): void {
    this.failure = err;
    if (this.connection !== null && this.pgHandler !== null && !this.finished) {
      // still reading the socket ourselves (the connection broke mid-COPY): give it back to pg
      this.connection.stream.removeListener('data', this.onData);
      if (!this.connection.stream.listeners('data').includes(this.pgHandler)) this.connection.stream.on('data', this.pgHandler);
    }
    this.reject(err);
  }

  handleReadyForQuery(): void {
    // a sink's error (bad data) settles here; a server error has settled already (a second reject is a no-op)
    if (this.failure !== null) return this.reject(this.failure);
    if (!this.finished) return this.reject(new Error('COPY OUT ended without CopyDone'));
    try {
      this.resolve(this.sink.finish());
    } catch (err) {
      this.reject(err as Error);
    }
  }

  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handleCopyData(): void {}
}
