import type { CopySink } from '../../src/store/copy-out.js';

/** All of a COPY's data in one Buffer: what the tests compare the binary decoder's results with. */
export class BufferSink implements CopySink<Buffer> {
  private readonly parts: Buffer[] = [];

  feed(src: Buffer, from: number, to: number): void {
    // copied: the sink must not keep the socket's buffers
    this.parts.push(Buffer.from(src.subarray(from, to)));
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}
