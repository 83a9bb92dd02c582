/**
 * @fileoverview The jitdump file (`--jitdump`): perf's format for naming
 * JIT code (tools/perf/Documentation/jitdump-specification.txt), written by
 * kjit from its own symbols, so `perf record -k mono` + `perf inject --jit`
 * name boot code and every version the installer links.
 *
 * Why not LLVM's PerfJITEventListener (LLVMCreatePerfJITEventListener):
 * Debian's libLLVM.so.19.1 has it, and it can be registered with kjit's
 * RTDyld object layer (LLJIT.registerJITEventListener), but it writes each
 * function's code from the address RTDyld's debug object gives its
 * section, and a section RTDyld did not load has address 0.  kjit's
 * objects each carry the retpoline thunk `__llvm_retpoline_r11` as a weak
 * COMDAT function without unwind info; RTDyld keeps the first object's copy
 * and loads no section for the others, so the listener reads 21 bytes at
 * address 0 and the process dies (SIGSEGV in raw_ostream::write under
 * RTDyldObjectLinkingLayer::onObjEmit) on the second object of every boot.
 * tests/jitdump.test.ts keeps a minimal reproduction.
 *
 * The file, as perf reads it:
 *  - jit-PID.dump in a directory of its own (perf inject writes the
 *    jitted-PID-N.so files it makes beside it) under $JITDUMPDIR/.debug/jit,
 *    $HOME/.debug/jit when JITDUMPDIR is unset (the convention of perf's
 *    own JVMTI agent and of LLVM's listener); one file per process;
 *  - its first page mapped PROT_READ|PROT_EXEC once: `perf record` keeps
 *    that mmap event, and `perf inject --jit` finds the file by it;
 *  - a 40-byte header, then one JIT_CODE_LOAD record per function as its
 *    code is linked (the boot image's at load, a version's right after the
 *    installer linked it): timestamp, pid, tid, address, size, a running
 *    index, the name, and the code bytes as linked.  Timestamps are
 *    CLOCK_MONOTONIC (header flags 0): record with `perf record -k mono`;
 *  - JIT_CODE_CLOSE when the process exits.
 * Unloads: the format has no record for them (JIT_CODE_MOVE says code moved,
 * JIT_CODE_CLOSE ends the file).  perf orders code by the loads'
 * timestamps, so code later linked at a freed address is named from its
 * load on; freed code itself is never marked gone (nothing runs there).
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { KjitError } from '../errors.js';
import { monotonicNs, mmapFileExecutable, munmap, readBytes } from '../native/libc.js';

/** The format's constants (jitdump-specification.txt). */
export const JITDUMP = {
  magic: 0x4a695444,
  version: 1,
  headerBytes: 40,
  /** EM_X86_64 */
  elfMachine: 62,
  /** Record ids. */
  codeLoad: 0,
  codeMove: 1,
  codeDebugInfo: 2,
  codeClose: 3,
  codeUnwindingInfo: 4,
  /** Bytes of a JIT_CODE_LOAD record before its name. */
  codeLoadFixedBytes: 56,
} as const;

const MARKER_BYTES = 4096;

/** A function whose code was just linked. */
export interface LoadedCode {
  name: string;
  address: bigint;
  size: number;
}

/** The process's jitdump file; Jitdump.open() makes it on first use. */
export class Jitdump {
  private static instance: Jitdump | null = null;

  readonly path: string;
  private fd: number;
  private marker: bigint;
  private nextIndex = 1n;
  private lastTimestamp = 0n;
  private _records = 0;
  private _bytes = 0;
  private _error: string | null = null;

  private constructor(path: string, fd: number, marker: bigint) {
    this.path = path;
    this.fd = fd;
    this.marker = marker;
    this._bytes = JITDUMP.headerBytes;
  }

  /** The directory perf's tools look under: $JITDUMPDIR, else $HOME. */
  static baseDirectory(): string {
    return join(process.env.JITDUMPDIR || process.env.HOME || homedir(), '.debug', 'jit');
  }

  /** The process's file, created (header written, mapped PROT_EXEC) the first time. */
  static open(): Jitdump {
    if (Jitdump.instance) return Jitdump.instance;
    const base = Jitdump.baseDirectory();
    let path: string;
    let fd: number;
    try {
      mkdirSync(base, { recursive: true });
      const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
      const dir = mkdtempSync(join(base, `kjit-jit-${day}-`));
      path = join(dir, `jit-${process.pid}.dump`);
      fd = openSync(path, 'w+', 0o644);
    } catch (e) {
      throw new KjitError(`cannot create a jitdump file under ${base}: ${(e as Error).message}`, 'set JITDUMPDIR to a writable directory');
    }
    const header = Buffer.alloc(JITDUMP.headerBytes);
    header.writeUInt32LE(JITDUMP.magic, 0);
    header.writeUInt32LE(JITDUMP.version, 4);
    header.writeUInt32LE(JITDUMP.headerBytes, 8);
    header.writeUInt32LE(JITDUMP.elfMachine, 12);
    header.writeUInt32LE(0, 16); /* pad1 */
    header.writeUInt32LE(process.pid, 20);
    header.writeBigUInt64LE(monotonicNs(), 24);
    header.writeBigUInt64LE(0n, 32); /* flags: timestamps are CLOCK_MONOTONIC */
    writeSync(fd, header);
    const marker = mmapFileExecutable(fd, MARKER_BYTES);
    const file = new Jitdump(path, fd, marker);
    Jitdump.instance = file;
    process.once('exit', () => file.close());
    return file;
  }

  /** JIT_CODE_LOAD records written. */
  get records(): number {
    return this._records;
  }

  get bytes(): number {
    return this._bytes;
  }

  /** Why writing stopped (the file stays valid up to its last whole record), or null. */
  get error(): string | null {
    return this._error;
  }

  /**
   * One JIT_CODE_LOAD record per function, its code read from memory now:
   * call it once the code is linked and before it can run.  A failed write
   * stops the file (recorded in `error`); it never fails the caller.
   */
  codeLoaded(code: readonly LoadedCode[]): void {
    if (this.fd < 0 || this._error || code.length === 0) return;
    let timestamp = monotonicNs();
    if (timestamp < this.lastTimestamp) timestamp = this.lastTimestamp;
    this.lastTimestamp = timestamp;
    const parts: Buffer[] = [];
    for (const c of code) {
      const name = Buffer.from(`${c.name}\0`, 'utf8');
      const fixed = Buffer.alloc(JITDUMP.codeLoadFixedBytes);
      const total = JITDUMP.codeLoadFixedBytes + name.length + c.size;
      fixed.writeUInt32LE(JITDUMP.codeLoad, 0);
      fixed.writeUInt32LE(total, 4);
      fixed.writeBigUInt64LE(timestamp, 8);
      fixed.writeUInt32LE(process.pid, 16);
      fixed.writeUInt32LE(process.pid, 20); /* tid: the host thread links (Node's main thread: tid = pid) */
      fixed.writeBigUInt64LE(c.address, 24); /* vma */
      fixed.writeBigUInt64LE(c.address, 32); /* code_addr */
      fixed.writeBigUInt64LE(BigInt(c.size), 40);
      fixed.writeBigUInt64LE(this.nextIndex++, 48);
      parts.push(fixed, name, Buffer.from(readBytes(c.address, c.size)));
    }
    const chunk = Buffer.concat(parts);
    try {
      writeSync(this.fd, chunk);
      this._records += code.length;
      this._bytes += chunk.length;
    } catch (e) {
      this._error = `writing ${this.path} failed: ${(e as Error).message}`;
    }
  }

  /** Write JIT_CODE_CLOSE and close the file (at exit). */
  close(): void {
    if (this.fd < 0) return;
    if (!this._error) {
      const rec = Buffer.alloc(16);
      rec.writeUInt32LE(JITDUMP.codeClose, 0);
      rec.writeUInt32LE(16, 4);
      rec.writeBigUInt64LE(monotonicNs() > this.lastTimestamp ? monotonicNs() : this.lastTimestamp, 8);
      try {
        writeSync(this.fd, rec);
      } catch {
        /* the file stays valid up to its last whole record */
      }
    }
    munmap(this.marker, MARKER_BYTES);
    closeSync(this.fd);
    this.fd = -1;
    this.marker = 0n;
    if (Jitdump.instance === this) Jitdump.instance = null;
  }
}
