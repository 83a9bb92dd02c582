/**
 * @fileoverview Typed wrappers over LLVM 19's C API (declared in llvm-c.ts).
 *
 * Ownership is explicit: a Context, Module, TargetMachine, LLJIT or
 * ResourceTracker owns its LLVM object until `dispose()` (or the end of a
 * `using` block); a Module belongs to its Context and must be disposed
 * first; a Value or Type is a borrowed reference into a module and is only
 * valid while that module is.  Every failure LLVM reports (an error
 * reference, a message out-parameter, a diagnostic) becomes an LLVMError
 * carrying LLVM's own message; LLVM never gets to print or exit.
 */
import koffi from 'koffi';

import { callNative } from './libc.js';
import { C, DiagnosticHandlerProto, llvmSymbolAddress, type MaybeRef, type Ref } from './llvm-c.js';

export class LLVMError extends Error {
  readonly llvmMessage: string;
  constructor(what: string, llvmMessage: string) {
    super(`${what}: ${llvmMessage}`);
    this.name = 'LLVMError';
    this.llvmMessage = llvmMessage;
  }
}

export class DisposedError extends Error {
  constructor(what: string) {
    super(`${what} used after dispose()`);
    this.name = 'DisposedError';
  }
}

/* ---- strings LLVM hands out ------------------------------------------------ */

/* koffi.decode.string, never koffi.decode(ptr, 'char', n): with a length
 * (or -1) decode makes an array type for that length on every call and
 * never frees it (koffi 3.3.4, MakeArrayType: ~18 bytes a call; measured
 * 100 KB per re-JIT unit, which reads thousands of names).  decode.string
 * makes the string directly; with a length it takes exactly those bytes,
 * NULs included, as UTF-8. */
function textAt(ptr: MaybeRef, length: number): string {
  if (!ptr || length === 0) return '';
  return koffi.decode.string(ptr, length) as string;
}

/** A NUL-terminated string LLVM keeps. */
function cString(ptr: MaybeRef): string {
  return ptr ? (koffi.decode.string(ptr) as string) : '';
}

/** A message LLVM allocated: read it, then give it back. */
function takeMessage(ptr: MaybeRef): string {
  if (!ptr) return '';
  const s = cString(ptr);
  C.LLVMDisposeMessage(ptr);
  return s;
}

/** Turn an LLVMErrorRef into an exception (null means success). */
function check(err: MaybeRef, what: string): void {
  if (!err) return;
  const p = C.LLVMGetErrorMessage(err) as MaybeRef;
  const msg = p ? cString(p) : 'unknown error';
  if (p) C.LLVMDisposeErrorMessage(p);
  throw new LLVMError(what, msg);
}

/* ---- enums ----------------------------------------------------------------- */

export const Linkage = {
  External: 0,
  AvailableExternally: 1,
  LinkOnceAny: 2,
  LinkOnceODR: 3,
  WeakAny: 5,
  WeakODR: 6,
  Appending: 7,
  Internal: 8,
  Private: 9,
  ExternalWeak: 12,
  Common: 14,
} as const;

export const Visibility = { Default: 0, Hidden: 1, Protected: 2 } as const;

const TypeKind = { Integer: 8, Function: 9, Pointer: 12, Void: 0 } as const;
const FUNCTION_INDEX = 0xffffffff; /* LLVMAttributeFunctionIndex */
const VERIFY_RETURN_STATUS = 2;
const DIAG_ERROR = 0;
const DIAG_WARNING = 1;

/* ---- contexts ---------------------------------------------------------------- */

/* One native diagnostic handler for every context; `ctx` carries an id. */
const contexts = new Map<number, Context>();
let nextContextId = 1;
let diagnosticHandler: bigint | null = null;

function onDiagnostic(info: Ref, id: Ref | null): void {
  const c = contexts.get(Number(id ?? 0n));
  const severity = C.LLVMGetDiagInfoSeverity(info) as number;
  const text = takeMessage(C.LLVMGetDiagInfoDescription(info) as MaybeRef);
  if (c && (severity === DIAG_ERROR || severity === DIAG_WARNING)) c.diagnostics.push(text);
}

/** An item of a metadata node: a string, an i32 (number), an i64 (bigint), or a nested node. */
export type MetadataItem = string | number | bigint | readonly MetadataItem[];

export class Context {
  readonly ref: Ref;
  /** Errors and warnings LLVM reported through this context, oldest first. */
  readonly diagnostics: string[] = [];
  private readonly id: number;
  private disposed = false;

  private constructor(ref: Ref, id: number) {
    this.ref = ref;
    this.id = id;
  }

  static create(): Context {
    diagnosticHandler ??= koffi.register(onDiagnostic, koffi.pointer(DiagnosticHandlerProto)) as unknown as bigint;
    const id = nextContextId++;
    const ctx = new Context(C.LLVMContextCreate() as Ref, id);
    C.LLVMContextSetDiagnosticHandler(ctx.ref, diagnosticHandler, BigInt(id));
    contexts.set(id, ctx);
    return ctx;
  }

  /** Diagnostics reported since `mark` (an index into `diagnostics`), joined. */
  diagnosticsSince(mark: number): string {
    return this.diagnostics.slice(mark).join('\n');
  }

  createModule(name: string): Module {
    return new Module(C.LLVMModuleCreateWithNameInContext(name, this.ref) as Ref, this);
  }

  int64Type(): Type {
    return new Type(C.LLVMInt64TypeInContext(this.ref) as Ref);
  }

  int32Type(): Type {
    return new Type(C.LLVMInt32TypeInContext(this.ref) as Ref);
  }

  voidType(): Type {
    return new Type(C.LLVMVoidTypeInContext(this.ref) as Ref);
  }

  /** The (opaque) pointer type of address space 0. */
  ptrType(): Type {
    return new Type(C.LLVMPointerTypeInContext(this.ref, 0) as Ref);
  }

  arrayType(element: Type, count: number): Type {
    return new Type(C.LLVMArrayType2(element.ref, BigInt(count)) as Ref);
  }

  functionType(ret: Type, params: readonly Type[]): Type {
    return new Type(C.LLVMFunctionType(ret.ref, params.map((t) => t.ref), params.length, 0) as Ref);
  }

  /**
   * A metadata node as a value: strings become MDStrings, numbers i32 and
   * bigints i64 constants (as in `!{!"branch_weights", i32 3, i32 1}`).
   */
  mdNode(items: readonly MetadataItem[]): Ref {
    const i32 = this.int32Type();
    const i64 = this.int64Type();
    const mds = items.map((x) =>
      typeof x === 'string'
        ? (C.LLVMMDStringInContext2(this.ref, x, Buffer.byteLength(x)) as Ref)
        : typeof x === 'object'
          ? this.mdNode(x)
          : (C.LLVMValueAsMetadata((typeof x === 'number' ? i32.constInt(BigInt(x)) : i64.constInt(x)).ref) as Ref),
    );
    return C.LLVMMDNodeInContext2(this.ref, mds, mds.length) as Ref;
  }

  mdKind(name: string): number {
    return C.LLVMGetMDKindIDInContext(this.ref, name, Buffer.byteLength(name)) as number;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Frees the context; every module in it must have been disposed. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    contexts.delete(this.id);
    C.LLVMContextDispose(this.ref);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/* ---- types -------------------------------------------------------------------- */

export class Type {
  readonly ref: Ref;
  constructor(ref: Ref) {
    this.ref = ref;
  }

  get kind(): number {
    return C.LLVMGetTypeKind(this.ref) as number;
  }

  isInteger(): boolean {
    return this.kind === TypeKind.Integer;
  }

  isPointer(): boolean {
    return this.kind === TypeKind.Pointer;
  }

  get intWidth(): number {
    return C.LLVMGetIntTypeWidth(this.ref) as number;
  }

  /** An integer constant of this type (two's complement for negative values). */
  constInt(value: bigint): Value {
    const width = this.intWidth;
    const bits = BigInt.asUintN(64, width >= 64 ? value : BigInt.asIntN(width, value));
    return new Value(C.LLVMConstInt(this.ref, bits, value < 0n ? 1 : 0) as Ref);
  }

  constNull(): Value {
    return new Value(C.LLVMConstNull(this.ref) as Ref);
  }

  poison(): Value {
    return new Value(C.LLVMGetPoison(this.ref) as Ref);
  }

  toString(): string {
    return takeMessage(C.LLVMPrintTypeToString(this.ref) as MaybeRef);
  }
}

/* ---- values ------------------------------------------------------------------- */

function wrap(ref: MaybeRef): Value | null {
  return ref ? new Value(ref) : null;
}

/**
 * A borrowed LLVMValueRef: a function, global, instruction or constant.
 * Methods that only make sense for one kind say so in their names.
 */
export class Value {
  readonly ref: Ref;
  constructor(ref: Ref) {
    this.ref = ref;
  }

  /* LLVMGetValueName (NUL-terminated; IR names hold no NUL) rather than
   * ...Name2: koffi's out-parameter for the length costs memory on the
   * hottest call of all. */
  get name(): string {
    return cString(C.LLVMGetValueName(this.ref) as MaybeRef);
  }

  set name(name: string) {
    C.LLVMSetValueName2(this.ref, name, Buffer.byteLength(name));
  }

  equals(other: Value | null): boolean {
    return !!other && other.ref === this.ref;
  }

  type(): Type {
    return new Type(C.LLVMTypeOf(this.ref) as Ref);
  }

  isFunction(): boolean {
    return C.LLVMIsAFunction(this.ref) !== null;
  }

  isGlobalVariable(): boolean {
    return C.LLVMIsAGlobalVariable(this.ref) !== null;
  }

  isGlobalValue(): boolean {
    return C.LLVMIsAGlobalValue(this.ref) !== null;
  }

  isInstruction(): boolean {
    return C.LLVMIsAInstruction(this.ref) !== null;
  }

  isLoad(): boolean {
    return C.LLVMIsALoadInst(this.ref) !== null;
  }

  isStore(): boolean {
    return C.LLVMIsAStoreInst(this.ref) !== null;
  }

  isCall(): boolean {
    return C.LLVMIsACallInst(this.ref) !== null;
  }

  /** A constant that is all zeroes (null pointer, 0, zeroinitializer). */
  isNull(): boolean {
    return (C.LLVMIsNull(this.ref) as number) !== 0;
  }

  /** A global without a body or initializer. */
  isDeclaration(): boolean {
    return (C.LLVMIsDeclaration(this.ref) as number) !== 0;
  }

  operand(i: number): Value | null {
    return wrap(C.LLVMGetOperand(this.ref, i) as MaybeRef);
  }

  get numOperands(): number {
    return C.LLVMGetNumOperands(this.ref) as number;
  }

  /** Call instructions: the callee operand. */
  calledValue(): Value | null {
    return wrap(C.LLVMGetCalledValue(this.ref) as MaybeRef);
  }

  /** Call instructions: the function called directly, or null for an indirect call or inline asm. */
  calledFunction(): Value | null {
    const callee = this.calledValue();
    return callee && callee.isFunction() ? callee : null;
  }

  isInlineAsmCall(): boolean {
    const callee = this.calledValue();
    return !!callee && C.LLVMIsAInlineAsm(callee.ref) !== null;
  }

  /** A call whose target is only known at run time. */
  isIndirectCall(): boolean {
    return this.isCall() && !this.isInlineAsmCall() && !this.calledFunction();
  }

  /** Load instructions: the global variable loaded from, if it is one. */
  loadPointer(): Value | null {
    const p = this.operand(0);
    return p && p.isGlobalVariable() ? p : null;
  }

  get opcode(): number {
    return C.LLVMGetInstructionOpcode(this.ref) as number;
  }

  get linkage(): number {
    return C.LLVMGetLinkage(this.ref) as number;
  }

  set linkage(l: number) {
    C.LLVMSetLinkage(this.ref, l);
  }

  get visibility(): number {
    return C.LLVMGetVisibility(this.ref) as number;
  }

  /** Hidden visibility also makes the symbol dso_local (LLVM's implicit rule). */
  set visibility(v: number) {
    C.LLVMSetVisibility(this.ref, v);
  }

  *users(): Generator<Value> {
    for (let u = C.LLVMGetFirstUse(this.ref) as MaybeRef; u; u = C.LLVMGetNextUse(u) as MaybeRef) {
      yield new Value(C.LLVMGetUser(u) as Ref);
    }
  }

  hasUses(): boolean {
    return C.LLVMGetFirstUse(this.ref) !== null;
  }

  replaceAllUsesWith(v: Value): void {
    C.LLVMReplaceAllUsesWith(this.ref, v.ref);
  }

  /** Remove from the module (functions, globals) or from the block (instructions). */
  erase(): void {
    if (this.isFunction()) C.LLVMDeleteFunction(this.ref);
    else if (this.isGlobalVariable()) C.LLVMDeleteGlobal(this.ref);
    else if (this.isInstruction()) C.LLVMInstructionEraseFromParent(this.ref);
    else throw new Error(`cannot erase ${this.name || 'a constant'}`);
  }

  /* global variables */

  get initializer(): Value | null {
    return wrap(C.LLVMGetInitializer(this.ref) as MaybeRef);
  }

  /** null makes the variable a declaration (its definition lives elsewhere). */
  set initializer(v: Value | null) {
    C.LLVMSetInitializer(this.ref, v ? v.ref : null);
  }

  get isConstantGlobal(): boolean {
    return (C.LLVMIsGlobalConstant(this.ref) as number) !== 0;
  }

  set isConstantGlobal(b: boolean) {
    C.LLVMSetGlobalConstant(this.ref, b ? 1 : 0);
  }

  /** Functions and globals: the type of what they define. */
  valueType(): Type {
    return new Type(C.LLVMGlobalGetValueType(this.ref) as Ref);
  }

  /* constants */

  /** Integer constants: the value, sign-extended; null if not an integer constant. */
  constIntValue(): bigint | null {
    if (C.LLVMIsAConstantInt(this.ref) === null) return null;
    return BigInt(C.LLVMConstIntGetSExtValue(this.ref) as number | bigint);
  }

  /** i8 array constants: the bytes as text (trailing NULs included). */
  constString(): string | null {
    if (!(C.LLVMIsConstantString(this.ref) as number)) return null;
    const len = [0];
    const p = C.LLVMGetAsString(this.ref, len) as MaybeRef;
    return textAt(p, Number(len[0]));
  }

  aggregateElement(i: number): Value | null {
    return wrap(C.LLVMGetAggregateElement(this.ref, i) as MaybeRef);
  }

  /* terminators and returns */

  /** Basic blocks: the terminator instruction (null while the block is being built). */
  terminator(): Value | null {
    return wrap(C.LLVMGetBasicBlockTerminator(this.ref) as MaybeRef);
  }

  isBranch(): boolean {
    return C.LLVMIsABranchInst(this.ref) !== null;
  }

  isConditionalBranch(): boolean {
    return this.isBranch() && (C.LLVMIsConditional(this.ref) as number) !== 0;
  }

  isSwitch(): boolean {
    return C.LLVMIsASwitchInst(this.ref) !== null;
  }

  isReturn(): boolean {
    return C.LLVMIsAReturnInst(this.ref) !== null;
  }

  /** Conditional branches: the i1 condition; switches: the value switched on. */
  condition(): Value {
    if (this.isSwitch()) return this.operand(0)!;
    return new Value(C.LLVMGetCondition(this.ref) as Ref);
  }

  get successorCount(): number {
    return C.LLVMGetNumSuccessors(this.ref) as number;
  }

  /** Switches: the case values, in successor order (successor 0 is the default). */
  switchCaseValues(): Value[] {
    const out: Value[] = [];
    for (let i = 2; i < this.numOperands; i += 2) out.push(this.operand(i)!);
    return out;
  }

  /** Instructions: the function they are in. */
  parentFunction(): Value {
    return new Value(C.LLVMGetBasicBlockParent(C.LLVMGetInstructionParent(this.ref)) as Ref);
  }

  /** Calls: make `fn` the callee (a direct call; same function type). */
  setCallee(fn: Value): void {
    C.LLVMSetOperand(this.ref, this.numOperands - 1, fn.ref);
  }

  isAlloca(): boolean {
    return C.LLVMIsAAllocaInst(this.ref) !== null;
  }

  /** Functions: its parameters. */
  params(): Value[] {
    const n = C.LLVMCountParams(this.ref) as number;
    const out: Value[] = [];
    for (let i = 0; i < n; i++) out.push(new Value(C.LLVMGetParam(this.ref, i) as Ref));
    return out;
  }

  /** Functions: takes a variable number of arguments. */
  isVarArg(): boolean {
    return (C.LLVMIsFunctionVarArg(C.LLVMGlobalGetValueType(this.ref)) as number) !== 0;
  }

  /** Functions: a new basic block before the current first one (it becomes the entry). */
  prependBlock(name: string, ctx: Context = contextOf(this)): Value {
    const first = C.LLVMGetFirstBasicBlock(this.ref) as MaybeRef;
    if (!first) throw new Error('prependBlock: the function has no body');
    return new Value(C.LLVMInsertBasicBlockInContext(ctx.ref, first, name) as Ref);
  }

  /** Functions: a new basic block after the last one. */
  appendBlock(name: string, ctx: Context = contextOf(this)): Value {
    return new Value(C.LLVMAppendBasicBlockInContext(ctx.ref, this.ref, name) as Ref);
  }

  /** Calls marked musttail (nothing may come between them and the return). */
  isMustTailCall(): boolean {
    return this.isCall() && (C.LLVMGetTailCallKind(this.ref) as number) === 2;
  }

  /**
   * Attach `!kind !{items}` (Context.mdNode) to this instruction, or to this
   * function or global.
   */
  setMetadataNode(kind: string, items: readonly MetadataItem[], ctx: Context = contextOf(this)): void {
    const node = ctx.mdNode(items);
    if (this.isInstruction()) C.LLVMSetMetadata(this.ref, ctx.mdKind(kind), C.LLVMMetadataAsValue(ctx.ref, node));
    else C.LLVMGlobalSetMetadata(this.ref, ctx.mdKind(kind), node);
  }

  /** Textual IR of this value (a function: its whole definition). */
  print(): string {
    return takeMessage(C.LLVMPrintValueToString(this.ref) as MaybeRef);
  }

  /* functions */

  *blocks(): Generator<Value> {
    for (let b = C.LLVMGetFirstBasicBlock(this.ref) as MaybeRef; b; b = C.LLVMGetNextBasicBlock(b) as MaybeRef) {
      yield new Value(b);
    }
  }

  get blockCount(): number {
    return C.LLVMCountBasicBlocks(this.ref) as number;
  }

  /** Basic blocks: their instructions.  Functions: all instructions, block by block. */
  *instructions(): Generator<Value> {
    if (this.isFunction()) {
      for (const b of this.blocks()) yield* b.instructions();
      return;
    }
    for (let i = C.LLVMGetFirstInstruction(this.ref) as MaybeRef; i; ) {
      const next = C.LLVMGetNextInstruction(i) as MaybeRef; /* the caller may erase i */
      yield new Value(i);
      i = next;
    }
  }

  /**
   * Make a defined function a declaration (what Function::deleteBody does):
   * every instruction's uses are replaced by poison, every instruction is
   * erased (dropping the references branches and phis hold to blocks), then
   * the empty blocks go.
   */
  deleteBody(): void {
    const blocks = [...this.blocks()];
    for (const b of blocks) {
      for (const inst of b.instructions()) {
        if (inst.hasUses()) inst.replaceAllUsesWith(inst.type().poison());
      }
    }
    for (const b of blocks) for (const inst of [...b.instructions()].reverse()) inst.erase();
    for (const b of blocks) C.LLVMDeleteBasicBlock(b.ref);
    this.linkage = Linkage.External;
  }

  returnTypeString(): string {
    return new Type(C.LLVMGetReturnType(this.valueType().ref) as Ref).toString();
  }

  paramTypeStrings(): string[] {
    const n = C.LLVMCountParams(this.ref) as number;
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(new Value(C.LLVMGetParam(this.ref, i) as Ref).type().toString());
    return out;
  }

  functionTypeString(): string {
    return this.valueType().toString();
  }

  /* attributes (functions) and metadata (globals, instructions) */

  getStringAttribute(key: string): string | null {
    const a = C.LLVMGetStringAttributeAtIndex(this.ref, FUNCTION_INDEX, key, Buffer.byteLength(key)) as MaybeRef;
    if (!a) return null;
    const len = [0];
    const p = C.LLVMGetStringAttributeValue(a, len) as MaybeRef;
    return textAt(p, Number(len[0]));
  }

  /** Set (or replace) a function attribute `key`="value". */
  setStringAttribute(key: string, value: string, ctx: Context = contextOf(this)): void {
    const a = C.LLVMCreateStringAttribute(ctx.ref, key, Buffer.byteLength(key), value, Buffer.byteLength(value));
    C.LLVMAddAttributeAtIndex(this.ref, FUNCTION_INDEX, a);
  }

  removeStringAttribute(key: string): void {
    C.LLVMRemoveStringAttributeAtIndex(this.ref, FUNCTION_INDEX, key, Buffer.byteLength(key));
  }

  /** Globals: the string in a `!kind !{!"text"}` attachment. */
  getMetadataString(kind: string, ctx: Context = contextOf(this)): string | null {
    const id = C.LLVMGetMDKindIDInContext(ctx.ref, kind, Buffer.byteLength(kind)) as number;
    const count = [0];
    const entries = C.LLVMGlobalCopyAllMetadata(this.ref, count) as MaybeRef;
    if (!entries) return null;
    try {
      for (let i = 0; i < Number(count[0]); i++) {
        if ((C.LLVMValueMetadataEntriesGetKind(entries, i) as number) !== id) continue;
        const node = C.LLVMMetadataAsValue(ctx.ref, C.LLVMValueMetadataEntriesGetMetadata(entries, i)) as Ref;
        const n = C.LLVMGetMDNodeNumOperands(node) as number;
        if (n < 1) return null;
        const ops: (bigint | null)[] = new Array(n).fill(null);
        C.LLVMGetMDNodeOperands(node, ops);
        const len = [0];
        const p = C.LLVMGetMDString(ops[0], len) as MaybeRef;
        return p ? textAt(p, Number(len[0])) : null;
      }
      return null;
    } finally {
      C.LLVMDisposeValueMetadataEntries(entries);
    }
  }

  setMetadataString(kind: string, text: string, ctx: Context = contextOf(this)): void {
    const id = C.LLVMGetMDKindIDInContext(ctx.ref, kind, Buffer.byteLength(kind)) as number;
    const s = C.LLVMMDStringInContext2(ctx.ref, text, Buffer.byteLength(text)) as Ref;
    const node = C.LLVMMDNodeInContext2(ctx.ref, [s], 1) as Ref;
    C.LLVMGlobalSetMetadata(this.ref, id, node);
  }
}

/* Values do not carry their context; the C API reaches it through the module. */
const valueContexts = new WeakMap<Value, Context>();
let currentContextHint: Context | null = null;

function contextOf(v: Value): Context {
  const c = valueContexts.get(v) ?? currentContextHint;
  if (!c) throw new Error('this operation needs the value\'s LLVM context: reach the value through its Module');
  return c;
}

function owned(v: Value | null, ctx: Context): Value | null {
  if (v) valueContexts.set(v, ctx);
  return v;
}

/* ---- modules ---------------------------------------------------------------- */

function memoryBuffer(bytes: Uint8Array, name: string): Ref {
  return C.LLVMCreateMemoryBufferWithMemoryRangeCopy(bytes, bytes.byteLength, name) as Ref;
}

function takeBuffer(buf: Ref): Uint8Array {
  const start = C.LLVMGetBufferStart(buf) as MaybeRef;
  const size = Number(C.LLVMGetBufferSize(buf));
  const out = new Uint8Array(size);
  if (start && size) out.set(new Uint8Array(koffi.view(start, size)));
  C.LLVMDisposeMemoryBuffer(buf);
  return out;
}

export class Module {
  private _ref: Ref | null;
  readonly context: Context;

  constructor(ref: Ref, context: Context) {
    this._ref = ref;
    this.context = context;
  }

  get ref(): Ref {
    if (this._ref === null) throw new DisposedError('Module');
    return this._ref;
  }

  get isDisposed(): boolean {
    return this._ref === null;
  }

  /** Parse LLVM bitcode. */
  static parseBitcode(ctx: Context, bytes: Uint8Array, name: string): Module {
    return Module.parse(ctx, bytes, name, 'bitcode');
  }

  /** Parse textual IR (bitcode is accepted too). */
  static parseIR(ctx: Context, bytes: Uint8Array, name: string): Module {
    return Module.parse(ctx, bytes, name, 'IR');
  }

  private static parse(ctx: Context, bytes: Uint8Array, name: string, what: string): Module {
    const mark = ctx.diagnostics.length;
    const out: (bigint | null)[] = [null];
    const msg: (bigint | null)[] = [null];
    /* LLVMParseIRInContext takes the buffer (bitcode and text alike). */
    const failed = C.LLVMParseIRInContext(ctx.ref, memoryBuffer(bytes, name), out, msg) as number;
    const text = takeMessage(msg[0] ?? null);
    if (failed || !out[0]) {
      throw new LLVMError(`cannot parse ${what} ${name}`, text || ctx.diagnosticsSince(mark) || 'unknown error');
    }
    return new Module(out[0], ctx);
  }

  /** A deep copy in the same context (owned by the caller). */
  clone(): Module {
    return new Module(C.LLVMCloneModule(this.ref) as Ref, this.context);
  }

  /** null if the module is well formed, else LLVM's description of what is wrong. */
  verify(): string | null {
    const msg: (bigint | null)[] = [null];
    const broken = C.LLVMVerifyModule(this.ref, VERIFY_RETURN_STATUS, msg) as number;
    const text = takeMessage(msg[0] ?? null);
    return broken ? text.trim() || 'the module is broken' : null;
  }

  /** Run a new-pass-manager pipeline (`default<O2>`, `globaldce`, ...). */
  runPasses(pipeline: string, tm: TargetMachine | null): void {
    const opts = C.LLVMCreatePassBuilderOptions() as Ref;
    try {
      check(C.LLVMRunPasses(this.ref, pipeline, tm ? tm.ref : null, opts) as MaybeRef, `pipeline '${pipeline}'`);
    } finally {
      C.LLVMDisposePassBuilderOptions(opts);
    }
  }

  /** runPasses on a libuv worker thread; nothing else may use this module's context until it settles. */
  runPassesAsync(pipeline: string, tm: TargetMachine | null): Promise<void> {
    const opts = C.LLVMCreatePassBuilderOptions() as Ref;
    return new Promise((resolve, reject) => {
      C.LLVMRunPasses.async(this.ref, pipeline, tm ? tm.ref : null, opts, (err: unknown, result: MaybeRef) => {
        C.LLVMDisposePassBuilderOptions(opts);
        if (err) return reject(err as Error);
        try {
          check(result, `pipeline '${pipeline}'`);
          resolve();
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  }

  /** Link `src` into this module.  `src` is consumed (disposed) either way. */
  link(src: Module): void {
    if (src.context !== this.context) throw new Error('cannot link modules of different contexts');
    const mark = this.context.diagnostics.length;
    const srcRef = src.ref;
    src._ref = null;
    const failed = C.LLVMLinkModules2(this.ref, srcRef) as number;
    if (failed) throw new LLVMError('linking failed', this.context.diagnosticsSince(mark) || 'unknown error');
  }

  writeBitcode(path: string): void {
    if ((C.LLVMWriteBitcodeToFile(this.ref, path) as number) !== 0) {
      throw new LLVMError('cannot write bitcode', path);
    }
  }

  toBitcode(): Uint8Array {
    return takeBuffer(C.LLVMWriteBitcodeToMemoryBuffer(this.ref) as Ref);
  }

  /** Textual IR. */
  print(): string {
    return takeMessage(C.LLVMPrintModuleToString(this.ref) as MaybeRef);
  }

  get name(): string {
    const len = [0];
    return textAt(C.LLVMGetModuleIdentifier(this.ref, len) as MaybeRef, Number(len[0]));
  }

  set name(s: string) {
    C.LLVMSetModuleIdentifier(this.ref, s, Buffer.byteLength(s));
  }

  get sourceFileName(): string {
    const len = [0];
    return textAt(C.LLVMGetSourceFileName(this.ref, len) as MaybeRef, Number(len[0]));
  }

  set sourceFileName(s: string) {
    C.LLVMSetSourceFileName(this.ref, s, Buffer.byteLength(s));
  }

  get triple(): string {
    return cString(C.LLVMGetTarget(this.ref) as MaybeRef);
  }

  set triple(s: string) {
    C.LLVMSetTarget(this.ref, s);
  }

  get dataLayout(): string {
    return cString(C.LLVMGetDataLayoutStr(this.ref) as MaybeRef);
  }

  set dataLayout(s: string) {
    C.LLVMSetDataLayout(this.ref, s);
  }

  /** Module-level assembly. */
  get inlineAsm(): string {
    const len = [0];
    return textAt(C.LLVMGetModuleInlineAsm(this.ref, len) as MaybeRef, Number(len[0]));
  }

  set inlineAsm(text: string) {
    const b = Buffer.from(text);
    C.LLVMSetModuleInlineAsm2(this.ref, b, b.length);
  }

  *functions(): Generator<Value> {
    for (let f = C.LLVMGetFirstFunction(this.ref) as MaybeRef; f; ) {
      const next = C.LLVMGetNextFunction(f) as MaybeRef; /* the caller may erase f */
      yield owned(new Value(f), this.context)!;
      f = next;
    }
  }

  *globals(): Generator<Value> {
    for (let g = C.LLVMGetFirstGlobal(this.ref) as MaybeRef; g; ) {
      const next = C.LLVMGetNextGlobal(g) as MaybeRef;
      yield owned(new Value(g), this.context)!;
      g = next;
    }
  }

  getFunction(name: string): Value | null {
    return owned(wrap(C.LLVMGetNamedFunction(this.ref, name) as MaybeRef), this.context);
  }

  getGlobal(name: string): Value | null {
    return owned(wrap(C.LLVMGetNamedGlobal(this.ref, name) as MaybeRef), this.context);
  }

  /** Attach this module's context to a value reached some other way (users, operands). */
  adopt(v: Value): Value {
    valueContexts.set(v, this.context);
    return v;
  }

  /** Run `fn` with this module's context as the default for values it touches. */
  withContext<T>(fn: () => T): T {
    const saved = currentContextHint;
    currentContextHint = this.context;
    try {
      return fn();
    } finally {
      currentContextHint = saved;
    }
  }

  /** A new global variable of type `type` (no initializer yet). */
  addGlobal(type: Type, name: string): Value {
    return owned(new Value(C.LLVMAddGlobal(this.ref, type.ref, name) as Ref), this.context)!;
  }

  /** Add a module flag whose conflicts are errors (`!{i32 1, !"key", !{...}}`), e.g. the ProfileSummary. */
  addModuleFlag(key: string, items: readonly MetadataItem[]): void {
    C.LLVMAddModuleFlag(this.ref, 0 /* LLVMModuleFlagBehaviorError */, key, Buffer.byteLength(key), this.context.mdNode(items));
  }

  /** A function declaration (a body-less function) of type `fnType` (Context.functionType). */
  addFunction(name: string, fnType: Type): Value {
    return owned(new Value(C.LLVMAddFunction(this.ref, name, fnType.ref) as Ref), this.context)!;
  }

  createBuilder(): Builder {
    return new Builder(this.context);
  }

  dispose(): void {
    if (this._ref === null) return;
    C.LLVMDisposeModule(this._ref);
    this._ref = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/* ---- IR builder ------------------------------------------------------------- */

export class Builder {
  private ref: Ref | null;
  private readonly ctx: Context;

  constructor(ctx: Context) {
    this.ctx = ctx;
    this.ref = C.LLVMCreateBuilderInContext(ctx.ref) as Ref;
  }

  /**
   * Before `inst`, add 1 to the i64 at `base + byteOffset` (a plain load, add
   * and store: counters are written by one thread).
   */
  incrementBefore(inst: Value, base: Value, byteOffset: number): void {
    if (this.ref === null) throw new DisposedError('Builder');
    C.LLVMPositionBuilderBefore(this.ref, inst.ref);
    const i8 = C.LLVMInt8TypeInContext(this.ctx.ref) as Ref;
    const i64 = this.ctx.int64Type();
    const slot = C.LLVMBuildGEP2(this.ref, i8, base.ref, [i64.constInt(BigInt(byteOffset)).ref], 1, '') as Ref;
    const old = C.LLVMBuildLoad2(this.ref, i64.ref, slot, 'kjit.count') as Ref;
    const sum = C.LLVMBuildAdd(this.ref, old, i64.constInt(1n).ref, 'kjit.count.inc') as Ref;
    C.LLVMBuildStore(this.ref, sum, slot);
  }

  private get b(): Ref {
    if (this.ref === null) throw new DisposedError('Builder');
    return this.ref;
  }

  /** New instructions go before `inst`. */
  positionBefore(inst: Value): this {
    C.LLVMPositionBuilderBefore(this.b, inst.ref);
    return this;
  }

  /** New instructions go at the end of `block`. */
  positionAtEnd(block: Value): this {
    C.LLVMPositionBuilderAtEnd(this.b, block.ref);
    return this;
  }

  /** Move `inst` (with its uses intact) to where the builder is. */
  move(inst: Value): void {
    C.LLVMInstructionRemoveFromParent(inst.ref);
    C.LLVMInsertIntoBuilder(this.b, inst.ref);
  }

  load(type: Type, ptr: Value): Value {
    return new Value(C.LLVMBuildLoad2(this.b, type.ref, ptr.ref, '') as Ref);
  }

  and(a: Value, b: Value): Value {
    return new Value(C.LLVMBuildAnd(this.b, a.ref, b.ref, '') as Ref);
  }

  condBr(cond: Value, then: Value, otherwise: Value): void {
    C.LLVMBuildCondBr(this.b, cond.ref, then.ref, otherwise.ref);
  }

  ret(v: Value | null): void {
    if (v) C.LLVMBuildRet(this.b, v.ref);
    else C.LLVMBuildRetVoid(this.b);
  }

  /** `base` + `bytes` (an i8 GEP; a constant expression when `base` is a constant). */
  offsetPointer(base: Value, bytes: number): Value {
    const i8 = C.LLVMInt8TypeInContext(this.ctx.ref) as Ref;
    return new Value(C.LLVMBuildGEP2(this.b, i8, base.ref, [this.ctx.int64Type().constInt(BigInt(bytes)).ref], 1, '') as Ref);
  }

  select(cond: Value, a: Value, b: Value): Value {
    return new Value(C.LLVMBuildSelect(this.b, cond.ref, a.ref, b.ref, '') as Ref);
  }

  icmpEq(a: Value, b: Value): Value {
    return new Value(C.LLVMBuildICmp(this.b, 32 /* LLVMIntEQ */, a.ref, b.ref, '') as Ref);
  }

  call(fnType: Type, fn: Value, args: readonly Value[]): Value {
    return new Value(C.LLVMBuildCall2(this.b, fnType.ref, fn.ref, args.map((a) => a.ref), args.length, '') as Ref);
  }

  /** Add 1 to element `index` (an i64 value) of the i64 array at `base`. */
  incrementElement(base: Value, index: Value): void {
    const i64 = this.ctx.int64Type();
    const slot = C.LLVMBuildGEP2(this.b, i64.ref, base.ref, [index.ref], 1, '') as Ref;
    const old = C.LLVMBuildLoad2(this.b, i64.ref, slot, 'kjit.count') as Ref;
    C.LLVMBuildStore(this.b, C.LLVMBuildAdd(this.b, old, i64.constInt(1n).ref, 'kjit.count.inc'), slot);
  }

  /** The address of element `index` (a constant) of the i64 array at `base`. */
  elementAddress(base: Value, index: number): Value {
    const i64 = this.ctx.int64Type();
    return new Value(C.LLVMBuildGEP2(this.b, i64.ref, base.ref, [i64.constInt(BigInt(index)).ref], 1, '') as Ref);
  }

  dispose(): void {
    if (this.ref === null) return;
    C.LLVMDisposeBuilder(this.ref);
    this.ref = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/* ---- targets --------------------------------------------------------------- */

let targetsReady = false;
function initializeX86(): void {
  if (targetsReady) return;
  C.LLVMInitializeX86TargetInfo();
  C.LLVMInitializeX86Target();
  C.LLVMInitializeX86TargetMC();
  C.LLVMInitializeX86AsmPrinter();
  C.LLVMInitializeX86AsmParser();
  C.LLVMInitializeX86Disassembler();
  targetsReady = true;
}

export function hostCPUName(): string {
  initializeX86();
  return takeMessage(C.LLVMGetHostCPUName() as MaybeRef);
}

/** LLVM's feature string for the host CPU (`+avx2,-avx512f,...`). */
export function hostCPUFeatures(): string {
  initializeX86();
  return takeMessage(C.LLVMGetHostCPUFeatures() as MaybeRef);
}

const RELOC = { default: 0, static: 1, pic: 2 } as const;
const CODE_MODEL = { default: 0, small: 3, kernel: 4, medium: 5, large: 6 } as const;

export interface TargetMachineOptions {
  triple: string;
  cpu: string;
  features: string;
  /** 0-3 (LLVMCodeGenOptLevel) */
  optLevel: 0 | 1 | 2 | 3;
  relocModel: keyof typeof RELOC;
  codeModel: keyof typeof CODE_MODEL;
}

export class TargetMachine {
  private _ref: Ref | null;
  readonly options: TargetMachineOptions;

  private constructor(ref: Ref, options: TargetMachineOptions) {
    this._ref = ref;
    this.options = options;
  }

  static create(options: TargetMachineOptions): TargetMachine {
    initializeX86();
    const t: (bigint | null)[] = [null];
    const msg: (bigint | null)[] = [null];
    if ((C.LLVMGetTargetFromTriple(options.triple, t, msg) as number) !== 0 || !t[0]) {
      throw new LLVMError(`no target for ${options.triple}`, takeMessage(msg[0] ?? null));
    }
    const ref = C.LLVMCreateTargetMachine(
      t[0],
      options.triple,
      options.cpu,
      options.features,
      options.optLevel,
      RELOC[options.relocModel],
      CODE_MODEL[options.codeModel],
    ) as MaybeRef;
    if (!ref) throw new LLVMError('cannot create a target machine', `${options.triple} ${options.cpu}`);
    return new TargetMachine(ref, options);
  }

  get ref(): Ref {
    if (this._ref === null) throw new DisposedError('TargetMachine');
    return this._ref;
  }

  dataLayout(): string {
    const td = C.LLVMCreateTargetDataLayout(this.ref) as Ref;
    try {
      return takeMessage(C.LLVMCopyStringRepOfTargetData(td) as MaybeRef);
    } finally {
      C.LLVMDisposeTargetData(td);
    }
  }

  /** Machine code for `m` as an ELF relocatable object. */
  emitObject(m: Module): Uint8Array {
    const msg: (bigint | null)[] = [null];
    const buf: (bigint | null)[] = [null];
    const failed = C.LLVMTargetMachineEmitToMemoryBuffer(this.ref, m.ref, 1 /* object */, msg, buf) as number;
    const text = takeMessage(msg[0] ?? null);
    if (failed || !buf[0]) throw new LLVMError(`code generation for ${m.name} failed`, text || 'unknown error');
    return takeBuffer(buf[0]);
  }

  /**
   * emitObject on a libuv worker thread.  The module's context and this
   * target machine must not be used by anyone else until it settles.
   */
  emitObjectAsync(m: Module): Promise<Uint8Array> {
    const msg: (bigint | null)[] = [null];
    const buf: (bigint | null)[] = [null];
    return new Promise((resolve, reject) => {
      C.LLVMTargetMachineEmitToMemoryBuffer.async(this.ref, m.ref, 1, msg, buf, (err: unknown, failed: number) => {
        if (err) return reject(err as Error);
        const text = takeMessage(msg[0] ?? null);
        if (failed || !buf[0]) return reject(new LLVMError(`code generation for ${m.name} failed`, text || 'unknown error'));
        resolve(takeBuffer(buf[0]));
      });
    });
  }

  dispose(): void {
    if (this._ref === null) return;
    C.LLVMDisposeTargetMachine(this._ref);
    this._ref = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/* ---- object files ---------------------------------------------------------- */

export interface ObjectSymbol {
  name: string;
  size: number;
  /** Offset in its section (relocatable objects). */
  offset: number;
  /** Containing section, '' for undefined symbols. */
  section: string;
}

/** The named symbols of an ELF object (defined and undefined). */
export function objectSymbols(bytes: Uint8Array): ObjectSymbol[] {
  const buf = memoryBuffer(bytes, 'object');
  const msg: (bigint | null)[] = [null];
  const bin = C.LLVMCreateBinary(buf, null, msg) as MaybeRef;
  try {
    if (!bin) throw new LLVMError('not an object file', takeMessage(msg[0] ?? null));
    const out: ObjectSymbol[] = [];
    const it = C.LLVMObjectFileCopySymbolIterator(bin) as Ref;
    const sect = C.LLVMObjectFileCopySectionIterator(bin) as Ref;
    try {
      for (; !(C.LLVMObjectFileIsSymbolIteratorAtEnd(bin, it) as number); C.LLVMMoveToNextSymbol(it)) {
        const name = cString(C.LLVMGetSymbolName(it) as MaybeRef);
        if (!name) continue;
        C.LLVMMoveToContainingSection(sect, it);
        const section = (C.LLVMObjectFileIsSectionIteratorAtEnd(bin, sect) as number) ? '' : cString(C.LLVMGetSectionName(sect) as MaybeRef);
        out.push({ name, size: Number(C.LLVMGetSymbolSize(it)), offset: Number(C.LLVMGetSymbolAddress(it)), section });
      }
    } finally {
      C.LLVMDisposeSectionIterator(sect);
      C.LLVMDisposeSymbolIterator(it);
    }
    return out;
  } finally {
    if (bin) C.LLVMDisposeBinary(bin);
    C.LLVMDisposeMemoryBuffer(buf);
  }
}

/* ---- ORC LLJIT ---------------------------------------------------------------- */

/** Address of LLVMOrcCreateRTDyldObjectLinkingLayerWithMCJITMemoryManagerLikeCallbacks (for codemem.c). */
export function createRTDyldLayerFunctionAddress(): bigint {
  return llvmSymbolAddress('LLVMOrcCreateRTDyldObjectLinkingLayerWithMCJITMemoryManagerLikeCallbacks');
}

/** A sized symbol of code or data the JIT placed (LLJIT.symbols()). */
export interface JitSymbol {
  address: bigint;
  size: number;
  name: string;
  /** Its section in the object (.text..., .data..., ...). */
  section: string;
}

export class ResourceTracker {
  private _ref: Ref | null;
  constructor(
    ref: Ref,
    /** Told when the tracker's resources are freed (the JIT forgets the objects it kept for their symbols). */
    private readonly onRemove?: (t: ResourceTracker) => void,
  ) {
    this._ref = ref;
  }

  get ref(): Ref {
    if (this._ref === null) throw new DisposedError('ResourceTracker');
    return this._ref;
  }

  /** Free everything added under this tracker (its code and data). */
  remove(): void {
    check(C.LLVMOrcResourceTrackerRemove(this.ref) as MaybeRef, 'removing a resource tracker');
    this.onRemove?.(this);
  }

  dispose(): void {
    if (this._ref === null) return;
    C.LLVMOrcReleaseResourceTracker(this._ref);
    this._ref = null;
  }
}

/**
 * A JIT event listener (LLVMJITEventListenerRef).  The ones LLVM creates
 * through the C API are process-wide singletons that LLVM owns and never
 * frees (there is no dispose function): nothing to dispose here either.
 */
export type JITEventListener = Ref & { readonly __brand: 'JITEventListener' };

/**
 * LLVM's perf listener: it writes a jitdump file (jit-PID.dump, opened once
 * per process under $JITDUMPDIR or $HOME, mmap'ed PROT_EXEC so `perf record`
 * sees it) with a JIT_CODE_LOAD record per function of every object linked
 * by an RTDyld layer it is registered with.  Null when this libLLVM was
 * built without LLVM_USE_PERF (Debian's is built with it; if the file cannot
 * be opened it still returns the listener, which then writes nothing).
 * Do not register it with a kernel's JIT: it reads code at address 0 for a
 * weak function RTDyld skipped, and kjit's objects all have one (the
 * retpoline thunk; docs/llvm-notes.md).  kjit writes jitdump itself
 * (src/sampler/jitdump.ts); this stays for the test that watches the bug.
 */
export function perfJITEventListener(): JITEventListener | null {
  return (C.LLVMCreatePerfJITEventListener() as MaybeRef) as JITEventListener | null;
}

export interface LLJITOptions {
  /**
   * A native LLVMOrcLLJITBuilderObjectLinkingLayerCreatorFunction and its
   * context; `layer: 'rtdyld'` says the layer it makes is an
   * RTDyldObjectLinkingLayer (JIT event listeners can be registered).
   */
  creator?: { fn: bigint; ctx: bigint; layer?: 'rtdyld' };
}

export class LLJIT {
  private _ref: Ref | null;
  private readonly mainDylib: Ref;
  /** Symbols of added objects, for symbolize(). */
  /* Added objects, read for their symbols only when symbols() is first asked
   * (a fault, a perf map): not on the boot path.  An object added under a
   * tracker is forgotten when the tracker is removed (its code is gone). */
  private readonly objects = new Map<ResourceTracker | null, Uint8Array[]>();
  private symbolTable: JitSymbol[] | null = null;

  private constructor(
    ref: Ref,
    /** Its object layer is an RTDyldObjectLinkingLayer (LLJIT's own default on x86-64 ELF is JITLink). */
    private readonly rtdyld = false,
  ) {
    this._ref = ref;
    this.mainDylib = C.LLVMOrcLLJITGetMainJITDylib(ref) as Ref;
  }

  static create(options: LLJITOptions = {}): LLJIT {
    initializeX86();
    const builder = C.LLVMOrcCreateLLJITBuilder() as Ref;
    if (options.creator) {
      C.LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator(builder, options.creator.fn, options.creator.ctx);
    }
    const out: (bigint | null)[] = [null];
    check(C.LLVMOrcCreateLLJIT(out, builder) as MaybeRef, 'creating an LLJIT'); /* takes the builder */
    return new LLJIT(out[0]!, options.creator?.layer === 'rtdyld');
  }

  /**
   * Tell `listener` about every object linked from now on (and about its
   * freeing).  Register before adding objects: objects already linked are
   * not replayed.  The JIT does not own the listener.  Only for a JIT whose
   * object layer is RTDyld (LLVM's C API casts the layer blindly).
   */
  registerJITEventListener(listener: JITEventListener): void {
    if (!this.rtdyld) throw new Error('JIT event listeners need an RTDyld object layer (LLJIT.create({ creator: { layer: "rtdyld" } }))');
    C.LLVMOrcRTDyldObjectLinkingLayerRegisterJITEventListener(C.LLVMOrcLLJITGetObjLinkingLayer(this.ref), listener);
  }

  get ref(): Ref {
    if (this._ref === null) throw new DisposedError('LLJIT');
    return this._ref;
  }

  /** Let JIT code call the process's libraries (libc, libpthread). */
  addProcessSymbols(): void {
    const gen: (bigint | null)[] = [null];
    const prefix = C.LLVMOrcLLJITGetGlobalPrefix(this.ref) as number | string;
    check(
      C.LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(gen, prefix, null, null) as MaybeRef,
      'creating the process symbol generator',
    );
    C.LLVMOrcJITDylibAddGenerator(this.mainDylib, gen[0]);
  }

  createResourceTracker(): ResourceTracker {
    return new ResourceTracker(C.LLVMOrcJITDylibCreateResourceTracker(this.mainDylib) as Ref, (t) => {
      this.objects.delete(t);
      this.symbolTable = null;
    });
  }

  /** Add an object file to the main JITDylib (under `tracker` if given). */
  addObject(bytes: Uint8Array, tracker?: ResourceTracker): void {
    const list = this.objects.get(tracker ?? null);
    if (list) list.push(bytes);
    else this.objects.set(tracker ?? null, [bytes]);
    this.symbolTable = null;
    const buf = memoryBuffer(bytes, 'kjit-object'); /* ownership passes to ORC */
    const err = tracker
      ? (C.LLVMOrcLLJITAddObjectFileWithRT(this.ref, tracker.ref, buf) as MaybeRef)
      : (C.LLVMOrcLLJITAddObjectFile(this.ref, this.mainDylib, buf) as MaybeRef);
    check(err, 'adding an object file');
  }

  /** Address of a symbol (materializing it if needed). */
  lookup(name: string): bigint {
    const out: (bigint | number | null)[] = [null];
    check(C.LLVMOrcLLJITLookup(this.ref, out, name) as MaybeRef, `looking up '${name}'`);
    return BigInt(out[0] ?? 0);
  }

  /** Look `name` up and call it with the C prototype `prototype` (e.g. `'uint64_t (void)'`). */
  call(name: string, prototype: string, ...args: unknown[]): unknown {
    return callNative(this.lookup(name), prototype, ...args);
  }

  tryLookup(name: string): bigint | null {
    try {
      return this.lookup(name);
    } catch (e) {
      if (e instanceof LLVMError) return null;
      throw e;
    }
  }

  /**
   * Every sized symbol of the added objects, by address.  ORC resolves only
   * global symbols; a local one is placed relative to a global symbol of the
   * same section of the same object.
   */
  symbols(): readonly JitSymbol[] {
    this.symbolTable ??= this.symbolsOf([...this.objects.values()].flat());
    return this.symbolTable;
  }

  /**
   * The symbols of the objects added without a resource tracker (a boot
   * image: they live as long as the JIT), by address; not cached.
   */
  baseSymbols(): readonly JitSymbol[] {
    return this.symbolsOf(this.objects.get(null) ?? []);
  }

  /** The sized symbols of one added object, by address (placed as symbols() places them); not cached. */
  objectPlacement(object: Uint8Array): readonly JitSymbol[] {
    return this.symbolsOf([object]);
  }

  private symbolsOf(objects: readonly Uint8Array[]): JitSymbol[] {
    const table: JitSymbol[] = [];
    for (const object of objects) {
      const syms = objectSymbols(object);
      const sectionBase = new Map<string, bigint>();
      for (const s of syms) {
        if (!s.section || sectionBase.has(s.section)) continue;
        const a = this.tryLookup(s.name);
        if (a !== null) sectionBase.set(s.section, a - BigInt(s.offset));
      }
      for (const s of syms) {
        const base = sectionBase.get(s.section);
        if (s.size > 0 && base !== undefined) table.push({ address: base + BigInt(s.offset), size: s.size, name: s.name, section: s.section });
      }
    }
    table.sort((x, y) => (x.address < y.address ? -1 : 1));
    return table;
  }

  /** `name+0xoff` for an address inside a symbol of an added object, else null. */
  symbolize(address: bigint): string | null {
    let best: JitSymbol | null = null;
    for (const s of this.symbols()) {
      if (s.address > address) break;
      best = s;
    }
    if (!best || address >= best.address + BigInt(best.size)) return null;
    return `${best.name}+0x${(address - best.address).toString(16)}`;
  }

  /** Free the JIT and all its code.  Nothing may be running JIT code. */
  dispose(): void {
    if (this._ref === null) return;
    const ref = this._ref;
    this._ref = null;
    check(C.LLVMOrcDisposeLLJIT(ref) as MaybeRef, 'disposing an LLJIT');
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
