// The LLVM C API wrappers: parse, iterate, attributes and metadata, verify,
// passes, object emission, JIT, dispose.  Runs against the built dist/ (what
// the kjit command runs).
import { callNative } from '../dist/src/native/libc.js';
import { describe, expect, it } from 'vitest';

import {
  Context,
  DisposedError,
  hostCPUName,
  LLJIT,
  LLVMError,
  Linkage,
  Module,
  objectSymbols,
  TargetMachine,
} from '../dist/src/native/llvm.js';

const IR = `
target triple = "x86_64-pc-linux-gnu"
@counter = internal global i64 0
@table = constant [2 x i64] [i64 7, i64 -3]
@name = private constant [4 x i8] c"abc\\00"

define internal i64 @helper(i64 %x) {
  %y = mul i64 %x, 3
  ret i64 %y
}

define i64 @work(i64 %n) {
entry:
  %c = load i64, ptr @counter
  %c1 = add i64 %c, 1
  store i64 %c1, ptr @counter
  %h = call i64 @helper(i64 %n)
  %r = add i64 %h, %c1
  ret i64 %r
}

define i64 @indirect(ptr %f, i64 %x) {
  %r = call i64 %f(i64 %x)
  ret i64 %r
}
`;

function parse(ctx: Context, text = IR): Module {
  return Module.parseIR(ctx, Buffer.from(text), 'test.ll');
}

function host(): TargetMachine {
  return TargetMachine.create({ triple: 'x86_64-pc-linux-gnu', cpu: hostCPUName(), features: '', optLevel: 2, relocModel: 'pic', codeModel: 'small' });
}

describe('modules', () => {
  it('parses text IR and iterates functions, blocks, instructions and globals', () => {
    const ctx = Context.create();
    const m = parse(ctx);
    const fns = [...m.functions()].map((f) => f.name);
    expect(fns).toEqual(['helper', 'work', 'indirect']);
    expect([...m.globals()].map((g) => g.name)).toEqual(['counter', 'table', 'name']);
    const work = m.getFunction('work')!;
    expect(work.blockCount).toBe(1);
    const insts = [...work.instructions()];
    expect(insts).toHaveLength(6);
    expect(insts[0]!.isLoad()).toBe(true);
    expect(insts[0]!.loadPointer()!.name).toBe('counter');
    expect(insts[3]!.isCall() && insts[3]!.calledFunction()!.name).toBe('helper');
    const ind = [...m.getFunction('indirect')!.instructions()][0]!;
    expect(ind.isIndirectCall()).toBe(true);
    expect(m.getFunction('helper')!.linkage).toBe(Linkage.Internal);
    expect(work.returnTypeString()).toBe('i64');
    expect(work.paramTypeStrings()).toEqual(['i64']);
    m.dispose();
    ctx.dispose();
  });

  it('reads constants: integers, arrays, strings', () => {
    using ctx = Context.create();
    using m = parse(ctx);
    const table = m.getGlobal('table')!.initializer!;
    expect(table.aggregateElement(0)!.constIntValue()).toBe(7n);
    expect(table.aggregateElement(1)!.constIntValue()).toBe(-3n);
    expect(m.getGlobal('name')!.initializer!.constString()).toBe('abc\0');
    expect(m.getGlobal('counter')!.initializer!.isNull()).toBe(true);
  });

  it('round-trips string attributes and global metadata, also through bitcode', () => {
    using ctx = Context.create();
    using m = parse(ctx);
    m.getFunction('work')!.setStringAttribute('kjit-unit', 'a.c');
    m.getGlobal('counter')!.setMetadataString('kjit.unit', 'b.c');
    expect(m.getFunction('work')!.getStringAttribute('kjit-unit')).toBe('a.c');
    m.getFunction('work')!.setStringAttribute('kjit-unit', 'c.c'); /* replaces */
    expect(m.getFunction('work')!.getStringAttribute('kjit-unit')).toBe('c.c');
    m.getFunction('work')!.setStringAttribute('kjit-unit', 'a.c');
    expect(m.getFunction('helper')!.getStringAttribute('kjit-unit')).toBeNull();
    expect(m.getGlobal('counter')!.getMetadataString('kjit.unit')).toBe('b.c');
    using again = Module.parseBitcode(ctx, m.toBitcode(), 'again');
    expect(again.getFunction('work')!.getStringAttribute('kjit-unit')).toBe('a.c');
    expect(again.getGlobal('counter')!.getMetadataString('kjit.unit')).toBe('b.c');
  });

  it('reports parse errors and verification failures with LLVM\'s message', () => {
    using ctx = Context.create();
    expect(() => parse(ctx, 'define i64 @f( {')).toThrow(LLVMError);
    try {
      parse(ctx, 'define i64 @f( {');
    } catch (e) {
      expect((e as LLVMError).llvmMessage).toMatch(/expected type|error/);
    }
    expect(() => Module.parseBitcode(ctx, Buffer.from([0x42, 0x43, 0xc0, 0xde, 1, 2, 3]), 'bad.bc')).toThrow(LLVMError);
    using broken = parse(ctx, 'define void @f() {\n  %x = add i32 %y, 1\n  %y = add i32 %x, 1\n  ret void\n}\n');
    expect(broken.verify()).toMatch(/does not dominate/);
    using ok = parse(ctx);
    expect(ok.verify()).toBeNull();
  });

  it('runs pass pipelines and rejects a bad one', () => {
    using ctx = Context.create();
    using m = parse(ctx);
    using tm = host();
    m.runPasses('default<O2>', tm);
    /* helper was inlined into work and deleted */
    expect(m.getFunction('helper')).toBeNull();
    expect(() => m.runPasses('no-such-pass', null)).toThrow(/unknown pass name|no-such-pass/);
  });

  it('clones and links; linking consumes the source', () => {
    using ctx = Context.create();
    using a = parse(ctx);
    const b = parse(ctx, 'define i64 @other() {\n  ret i64 5\n}\n');
    const c = a.clone();
    a.link(b);
    expect(b.isDisposed).toBe(true);
    expect(() => b.ref).toThrow(DisposedError);
    expect(a.getFunction('other')).not.toBeNull();
    expect(c.getFunction('other')).toBeNull();
    c.dispose();
    const dup = parse(ctx, 'define i64 @work(i64 %n) {\n  ret i64 0\n}\n');
    expect(() => a.link(dup)).toThrow(/symbol multiply defined|work/);
  });
});

describe('code generation and JIT', () => {
  it('emits objects for the host CPU and for generic x86-64', () => {
    using ctx = Context.create();
    for (const cpu of [hostCPUName(), 'x86-64']) {
      using m = parse(ctx);
      using tm = TargetMachine.create({ triple: 'x86_64-pc-linux-gnu', cpu, features: '', optLevel: 2, relocModel: 'pic', codeModel: 'small' });
      const obj = tm.emitObject(m);
      expect(Buffer.from(obj.subarray(0, 4)).toString('latin1')).toBe('\x7fELF');
      expect(objectSymbols(obj).map((s) => s.name)).toEqual(expect.arrayContaining(['work', 'indirect']));
    }
  });

  it('links an object into an LLJIT, calls it, and frees it with a resource tracker', () => {
    using ctx = Context.create();
    using m = parse(ctx);
    using tm = host();
    const obj = tm.emitObject(m);
    const jit = LLJIT.create();
    jit.addProcessSymbols();
    const rt = jit.createResourceTracker();
    jit.addObject(obj, rt);
    const work = jit.lookup('work');
    expect(work).toBeGreaterThan(0n);
    const call = (n: number) => callNative(work, 'int64_t (int64_t)', n) as number;
    expect(call(10)).toBe(31); /* 10*3 + 1 */
    expect(call(10)).toBe(32); /* state kept in @counter */
    expect(jit.symbolize(work + 2n)).toBe('work+0x2');
    /* a libc symbol resolves through the process generator */
    const libc = parse(ctx, 'declare i64 @strlen(ptr)\n@s = constant [3 x i8] c"hi\\00"\ndefine i64 @len() {\n  %n = call i64 @strlen(ptr @s)\n  ret i64 %n\n}\n');
    jit.addObject(tm.emitObject(libc));
    libc.dispose();
    expect(jit.call('len', 'int64_t (void)') as number).toBe(2);
    rt.remove();
    rt.dispose();
    expect(() => jit.lookup('work')).toThrow(LLVMError);
    expect(() => jit.lookup('no_such_symbol')).toThrow(/no_such_symbol/);
    jit.dispose();
    jit.dispose(); /* idempotent */
    expect(() => jit.lookup('len')).toThrow(DisposedError);
  });
});
