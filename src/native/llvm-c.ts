/**
 * @fileoverview Raw declarations of the LLVM 19 C API functions kjit calls,
 * bound with koffi.  Nothing here owns anything: src/native/llvm.ts wraps
 * these in types with explicit ownership.  Conventions (docs/llvm-notes.md):
 *
 *  - every LLVM reference is `void *` and arrives as a BigInt (null as null);
 *  - a `char *` LLVM allocates is declared `void *` and freed with the
 *    matching dispose function (a koffi string return would leak it and
 *    corrupt the heap at exit);
 *  - `const char *` results LLVM keeps ownership of are read with their
 *    length (`_Out_ size_t *`), never assumed NUL-terminated.
 */
import koffi from 'koffi';

export const LIBLLVM_PATH = '/usr/lib/llvm-19/lib/libLLVM.so.19.1';

/** An LLVM reference (LLVMModuleRef, LLVMValueRef ...). */
export type Ref = bigint;
/** A reference or null (what LLVM returns for "none"). */
export type MaybeRef = bigint | null;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fn = ((...args: any[]) => any) & { async(...args: any[]): void };

let lib: ReturnType<typeof koffi.load>;
try {
  lib = koffi.load(LIBLLVM_PATH);
} catch (e) {
  throw new Error(
    `cannot load LLVM 19's C API library ${LIBLLVM_PATH} (${(e as Error).message}); install it with \`npm run setup\``,
  );
}

const declarations = {
  /* contexts and diagnostics */
  LLVMContextCreate: 'void *LLVMContextCreate(void)',
  LLVMContextDispose: 'void LLVMContextDispose(void *C)',
  LLVMContextSetDiagnosticHandler: 'void LLVMContextSetDiagnosticHandler(void *C, void *handler, void *ctx)',
  LLVMGetDiagInfoDescription: 'void *LLVMGetDiagInfoDescription(void *DI)',
  LLVMGetDiagInfoSeverity: 'int LLVMGetDiagInfoSeverity(void *DI)',
  LLVMDisposeMessage: 'void LLVMDisposeMessage(void *msg)',
  LLVMGetMDKindIDInContext: 'unsigned int LLVMGetMDKindIDInContext(void *C, const char *name, unsigned int len)',

  /* memory buffers */
  LLVMCreateMemoryBufferWithMemoryRangeCopy:
    'void *LLVMCreateMemoryBufferWithMemoryRangeCopy(const uint8_t *data, size_t len, const char *name)',
  LLVMGetBufferStart: 'void *LLVMGetBufferStart(void *buf)',
  LLVMGetBufferSize: 'size_t LLVMGetBufferSize(void *buf)',
  LLVMDisposeMemoryBuffer: 'void LLVMDisposeMemoryBuffer(void *buf)',

  /* modules */
  LLVMParseIRInContext: 'int LLVMParseIRInContext(void *C, void *buf, _Out_ void **M, _Out_ void **msg)',
  LLVMModuleCreateWithNameInContext: 'void *LLVMModuleCreateWithNameInContext(const char *name, void *C)',
  LLVMCloneModule: 'void *LLVMCloneModule(void *M)',
  LLVMDisposeModule: 'void LLVMDisposeModule(void *M)',
  LLVMGetModuleContext: 'void *LLVMGetModuleContext(void *M)',
  LLVMVerifyModule: 'int LLVMVerifyModule(void *M, int action, _Out_ void **msg)',
  LLVMLinkModules2: 'int LLVMLinkModules2(void *dest, void *src)',
  LLVMWriteBitcodeToFile: 'int LLVMWriteBitcodeToFile(void *M, const char *path)',
  LLVMWriteBitcodeToMemoryBuffer: 'void *LLVMWriteBitcodeToMemoryBuffer(void *M)',
  LLVMPrintModuleToString: 'void *LLVMPrintModuleToString(void *M)',
  LLVMPrintValueToString: 'void *LLVMPrintValueToString(void *V)',
  LLVMGetModuleInlineAsm: 'void *LLVMGetModuleInlineAsm(void *M, _Out_ size_t *len)',
  LLVMSetModuleInlineAsm2: 'void LLVMSetModuleInlineAsm2(void *M, const uint8_t *asm, size_t len)',
  LLVMGetModuleIdentifier: 'void *LLVMGetModuleIdentifier(void *M, _Out_ size_t *len)',
  LLVMSetModuleIdentifier: 'void LLVMSetModuleIdentifier(void *M, const char *id, size_t len)',
  LLVMGetSourceFileName: 'void *LLVMGetSourceFileName(void *M, _Out_ size_t *len)',
  LLVMSetSourceFileName: 'void LLVMSetSourceFileName(void *M, const char *name, size_t len)',
  LLVMGetTarget: 'void *LLVMGetTarget(void *M)',
  LLVMSetTarget: 'void LLVMSetTarget(void *M, const char *triple)',
  LLVMGetDataLayoutStr: 'void *LLVMGetDataLayoutStr(void *M)',
  LLVMSetDataLayout: 'void LLVMSetDataLayout(void *M, const char *layout)',

  /* module contents */
  LLVMGetFirstFunction: 'void *LLVMGetFirstFunction(void *M)',
  LLVMGetNextFunction: 'void *LLVMGetNextFunction(void *F)',
  LLVMGetFirstGlobal: 'void *LLVMGetFirstGlobal(void *M)',
  LLVMGetNextGlobal: 'void *LLVMGetNextGlobal(void *G)',
  LLVMGetNamedFunction: 'void *LLVMGetNamedFunction(void *M, const char *name)',
  LLVMGetNamedGlobal: 'void *LLVMGetNamedGlobal(void *M, const char *name)',
  LLVMGetFirstBasicBlock: 'void *LLVMGetFirstBasicBlock(void *F)',
  LLVMGetNextBasicBlock: 'void *LLVMGetNextBasicBlock(void *BB)',
  LLVMCountBasicBlocks: 'unsigned int LLVMCountBasicBlocks(void *F)',
  LLVMDeleteBasicBlock: 'void LLVMDeleteBasicBlock(void *BB)',
  LLVMGetFirstInstruction: 'void *LLVMGetFirstInstruction(void *BB)',
  LLVMGetNextInstruction: 'void *LLVMGetNextInstruction(void *I)',
  LLVMGetInstructionOpcode: 'int LLVMGetInstructionOpcode(void *I)',
  LLVMInstructionEraseFromParent: 'void LLVMInstructionEraseFromParent(void *I)',
  LLVMDeleteFunction: 'void LLVMDeleteFunction(void *F)',
  LLVMDeleteGlobal: 'void LLVMDeleteGlobal(void *G)',
  LLVMAddGlobal: 'void *LLVMAddGlobal(void *M, void *Ty, const char *name)',

  /* values */
  LLVMGetValueName2: 'void *LLVMGetValueName2(void *V, _Out_ size_t *len)',
  LLVMGetValueName: 'void *LLVMGetValueName(void *V)',
  LLVMSetValueName2: 'void LLVMSetValueName2(void *V, const char *name, size_t len)',
  LLVMTypeOf: 'void *LLVMTypeOf(void *V)',
  LLVMIsDeclaration: 'int LLVMIsDeclaration(void *G)',
  LLVMIsNull: 'int LLVMIsNull(void *V)',
  LLVMIsAFunction: 'void *LLVMIsAFunction(void *V)',
  LLVMIsAGlobalVariable: 'void *LLVMIsAGlobalVariable(void *V)',
  LLVMIsAGlobalValue: 'void *LLVMIsAGlobalValue(void *V)',
  LLVMIsAInstruction: 'void *LLVMIsAInstruction(void *V)',
  LLVMIsALoadInst: 'void *LLVMIsALoadInst(void *V)',
  LLVMIsAStoreInst: 'void *LLVMIsAStoreInst(void *V)',
  LLVMIsACallInst: 'void *LLVMIsACallInst(void *V)',
  LLVMIsAInlineAsm: 'void *LLVMIsAInlineAsm(void *V)',
  LLVMIsAConstantInt: 'void *LLVMIsAConstantInt(void *V)',
  LLVMIsAConstantExpr: 'void *LLVMIsAConstantExpr(void *V)',
  LLVMIsConstantString: 'int LLVMIsConstantString(void *V)',
  LLVMGetCalledValue: 'void *LLVMGetCalledValue(void *call)',
  LLVMGetNumOperands: 'int LLVMGetNumOperands(void *V)',
  LLVMGetOperand: 'void *LLVMGetOperand(void *V, unsigned int i)',
  LLVMGetLinkage: 'int LLVMGetLinkage(void *G)',
  LLVMSetLinkage: 'void LLVMSetLinkage(void *G, int linkage)',
  LLVMGetVisibility: 'int LLVMGetVisibility(void *G)',
  LLVMSetVisibility: 'void LLVMSetVisibility(void *G, int visibility)',
  LLVMGetFirstUse: 'void *LLVMGetFirstUse(void *V)',
  LLVMGetNextUse: 'void *LLVMGetNextUse(void *U)',
  LLVMGetUser: 'void *LLVMGetUser(void *U)',
  LLVMReplaceAllUsesWith: 'void LLVMReplaceAllUsesWith(void *old, void *replacement)',
  LLVMGetInitializer: 'void *LLVMGetInitializer(void *G)',
  LLVMSetInitializer: 'void LLVMSetInitializer(void *G, void *C)',
  LLVMSetGlobalConstant: 'void LLVMSetGlobalConstant(void *G, int isConstant)',
  LLVMIsGlobalConstant: 'int LLVMIsGlobalConstant(void *G)',
  LLVMGlobalGetValueType: 'void *LLVMGlobalGetValueType(void *G)',
  LLVMCountParams: 'unsigned int LLVMCountParams(void *F)',
  LLVMGetParam: 'void *LLVMGetParam(void *F, unsigned int i)',
  LLVMGetPersonalityFn: 'void *LLVMGetPersonalityFn(void *F)',

  /* constants */
  LLVMConstInt: 'void *LLVMConstInt(void *Ty, unsigned long long value, int signExtend)',
  LLVMConstNull: 'void *LLVMConstNull(void *Ty)',
  LLVMGetPoison: 'void *LLVMGetPoison(void *Ty)',
  LLVMConstIntGetSExtValue: 'long long LLVMConstIntGetSExtValue(void *C)',
  LLVMGetAsString: 'void *LLVMGetAsString(void *C, _Out_ size_t *len)',
  LLVMGetAggregateElement: 'void *LLVMGetAggregateElement(void *C, unsigned int i)',

  /* types */
  LLVMGetTypeKind: 'int LLVMGetTypeKind(void *Ty)',
  LLVMGetIntTypeWidth: 'unsigned int LLVMGetIntTypeWidth(void *Ty)',
  LLVMGetReturnType: 'void *LLVMGetReturnType(void *FnTy)',
  LLVMPrintTypeToString: 'void *LLVMPrintTypeToString(void *Ty)',
  LLVMInt8TypeInContext: 'void *LLVMInt8TypeInContext(void *C)',
  LLVMInt64TypeInContext: 'void *LLVMInt64TypeInContext(void *C)',

  /* attributes and metadata */
  LLVMCreateStringAttribute:
    'void *LLVMCreateStringAttribute(void *C, const char *k, unsigned int klen, const char *v, unsigned int vlen)',
  LLVMAddAttributeAtIndex: 'void LLVMAddAttributeAtIndex(void *F, unsigned int idx, void *A)',
  LLVMGetStringAttributeAtIndex: 'void *LLVMGetStringAttributeAtIndex(void *F, unsigned int idx, const char *k, unsigned int klen)',
  LLVMRemoveStringAttributeAtIndex: 'void LLVMRemoveStringAttributeAtIndex(void *F, unsigned int idx, const char *k, unsigned int klen)',
  LLVMGetStringAttributeValue: 'void *LLVMGetStringAttributeValue(void *A, _Out_ unsigned int *len)',
  LLVMMDStringInContext2: 'void *LLVMMDStringInContext2(void *C, const char *s, size_t len)',
  LLVMMDNodeInContext2: 'void *LLVMMDNodeInContext2(void *C, void **mds, size_t count)',
  LLVMMetadataAsValue: 'void *LLVMMetadataAsValue(void *C, void *MD)',
  LLVMValueAsMetadata: 'void *LLVMValueAsMetadata(void *V)',
  LLVMGlobalSetMetadata: 'void LLVMGlobalSetMetadata(void *G, unsigned int kind, void *MD)',
  LLVMGlobalEraseMetadata: 'void LLVMGlobalEraseMetadata(void *G, unsigned int kind)',
  LLVMGlobalCopyAllMetadata: 'void *LLVMGlobalCopyAllMetadata(void *V, _Out_ size_t *count)',
  LLVMValueMetadataEntriesGetKind: 'unsigned int LLVMValueMetadataEntriesGetKind(void *entries, unsigned int i)',
  LLVMValueMetadataEntriesGetMetadata: 'void *LLVMValueMetadataEntriesGetMetadata(void *entries, unsigned int i)',
  LLVMDisposeValueMetadataEntries: 'void LLVMDisposeValueMetadataEntries(void *entries)',
  LLVMGetMDNodeNumOperands: 'unsigned int LLVMGetMDNodeNumOperands(void *V)',
  LLVMGetMDNodeOperands: 'void LLVMGetMDNodeOperands(void *V, _Out_ void **dest)',
  LLVMGetMDString: 'void *LLVMGetMDString(void *V, _Out_ unsigned int *len)',
  LLVMGetMetadata: 'void *LLVMGetMetadata(void *I, unsigned int kind)',
  LLVMSetMetadata: 'void LLVMSetMetadata(void *I, unsigned int kind, void *node)',

  /* IR building */
  LLVMCreateBuilderInContext: 'void *LLVMCreateBuilderInContext(void *C)',
  LLVMDisposeBuilder: 'void LLVMDisposeBuilder(void *B)',
  LLVMPositionBuilderBefore: 'void LLVMPositionBuilderBefore(void *B, void *I)',
  LLVMBuildLoad2: 'void *LLVMBuildLoad2(void *B, void *Ty, void *ptr, const char *name)',
  LLVMBuildStore: 'void *LLVMBuildStore(void *B, void *val, void *ptr)',
  LLVMBuildAdd: 'void *LLVMBuildAdd(void *B, void *a, void *b, const char *name)',
  LLVMBuildGEP2: 'void *LLVMBuildGEP2(void *B, void *Ty, void *ptr, void **idx, unsigned int n, const char *name)',
  LLVMBuildSelect: 'void *LLVMBuildSelect(void *B, void *cond, void *a, void *b, const char *name)',
  LLVMBuildICmp: 'void *LLVMBuildICmp(void *B, int op, void *a, void *b, const char *name)',
  LLVMBuildCall2: 'void *LLVMBuildCall2(void *B, void *fnTy, void *fn, void **args, unsigned int n, const char *name)',
  LLVMBuildPtrToInt: 'void *LLVMBuildPtrToInt(void *B, void *v, void *ty, const char *name)',
  LLVMGetBasicBlockTerminator: 'void *LLVMGetBasicBlockTerminator(void *BB)',
  LLVMIsABranchInst: 'void *LLVMIsABranchInst(void *V)',
  LLVMIsASwitchInst: 'void *LLVMIsASwitchInst(void *V)',
  LLVMIsAReturnInst: 'void *LLVMIsAReturnInst(void *V)',
  LLVMIsConditional: 'int LLVMIsConditional(void *Br)',
  LLVMGetCondition: 'void *LLVMGetCondition(void *Br)',
  LLVMGetNumSuccessors: 'unsigned int LLVMGetNumSuccessors(void *Term)',
  LLVMGetTailCallKind: 'int LLVMGetTailCallKind(void *Call)',
  LLVMFunctionType: 'void *LLVMFunctionType(void *ret, void **params, unsigned int n, int varArg)',
  LLVMVoidTypeInContext: 'void *LLVMVoidTypeInContext(void *C)',
  LLVMInt32TypeInContext: 'void *LLVMInt32TypeInContext(void *C)',
  LLVMPointerTypeInContext: 'void *LLVMPointerTypeInContext(void *C, unsigned int addressSpace)',
  LLVMArrayType2: 'void *LLVMArrayType2(void *elem, uint64_t count)',
  LLVMAddFunction: 'void *LLVMAddFunction(void *M, const char *name, void *fnTy)',
  LLVMAddModuleFlag: 'void LLVMAddModuleFlag(void *M, int behavior, const char *key, size_t keyLen, void *val)',
  LLVMInsertBasicBlockInContext: 'void *LLVMInsertBasicBlockInContext(void *C, void *before, const char *name)',
  LLVMAppendBasicBlockInContext: 'void *LLVMAppendBasicBlockInContext(void *C, void *fn, const char *name)',
  LLVMPositionBuilderAtEnd: 'void LLVMPositionBuilderAtEnd(void *B, void *BB)',
  LLVMBuildCondBr: 'void *LLVMBuildCondBr(void *B, void *cond, void *then, void *otherwise)',
  LLVMBuildRet: 'void *LLVMBuildRet(void *B, void *v)',
  LLVMBuildRetVoid: 'void *LLVMBuildRetVoid(void *B)',
  LLVMBuildAnd: 'void *LLVMBuildAnd(void *B, void *a, void *b, const char *name)',
  LLVMInstructionRemoveFromParent: 'void LLVMInstructionRemoveFromParent(void *I)',
  LLVMInsertIntoBuilder: 'void LLVMInsertIntoBuilder(void *B, void *I)',
  LLVMIsAAllocaInst: 'void *LLVMIsAAllocaInst(void *V)',
  LLVMIsFunctionVarArg: 'int LLVMIsFunctionVarArg(void *FnTy)',
  LLVMSetOperand: 'void LLVMSetOperand(void *User, unsigned int index, void *Val)',
  LLVMGetInstructionParent: 'void *LLVMGetInstructionParent(void *I)',
  LLVMGetBasicBlockParent: 'void *LLVMGetBasicBlockParent(void *BB)',

  /* errors */
  LLVMGetErrorMessage: 'void *LLVMGetErrorMessage(void *err)',
  LLVMDisposeErrorMessage: 'void LLVMDisposeErrorMessage(void *msg)',
  LLVMConsumeError: 'void LLVMConsumeError(void *err)',

  /* pass pipelines */
  LLVMCreatePassBuilderOptions: 'void *LLVMCreatePassBuilderOptions(void)',
  LLVMDisposePassBuilderOptions: 'void LLVMDisposePassBuilderOptions(void *opts)',
  LLVMPassBuilderOptionsSetVerifyEach: 'void LLVMPassBuilderOptionsSetVerifyEach(void *opts, int verify)',
  LLVMRunPasses: 'void *LLVMRunPasses(void *M, const char *passes, void *TM, void *opts)',

  /* targets */
  LLVMInitializeX86TargetInfo: 'void LLVMInitializeX86TargetInfo(void)',
  LLVMInitializeX86Target: 'void LLVMInitializeX86Target(void)',
  LLVMInitializeX86TargetMC: 'void LLVMInitializeX86TargetMC(void)',
  LLVMInitializeX86AsmPrinter: 'void LLVMInitializeX86AsmPrinter(void)',
  LLVMInitializeX86AsmParser: 'void LLVMInitializeX86AsmParser(void)',
  LLVMInitializeX86Disassembler: 'void LLVMInitializeX86Disassembler(void)',
  LLVMGetTargetFromTriple: 'int LLVMGetTargetFromTriple(const char *triple, _Out_ void **T, _Out_ void **msg)',
  LLVMCreateTargetMachine:
    'void *LLVMCreateTargetMachine(void *T, const char *triple, const char *cpu, const char *features, int level, int reloc, int model)',
  LLVMDisposeTargetMachine: 'void LLVMDisposeTargetMachine(void *TM)',
  LLVMCreateTargetDataLayout: 'void *LLVMCreateTargetDataLayout(void *TM)',
  LLVMCopyStringRepOfTargetData: 'void *LLVMCopyStringRepOfTargetData(void *TD)',
  LLVMDisposeTargetData: 'void LLVMDisposeTargetData(void *TD)',
  LLVMTargetMachineEmitToMemoryBuffer:
    'int LLVMTargetMachineEmitToMemoryBuffer(void *TM, void *M, int kind, _Out_ void **msg, _Out_ void **buf)',
  LLVMGetHostCPUName: 'void *LLVMGetHostCPUName(void)',
  LLVMGetHostCPUFeatures: 'void *LLVMGetHostCPUFeatures(void)',

  /* object files */
  LLVMCreateBinary: 'void *LLVMCreateBinary(void *buf, void *C, _Out_ void **msg)',
  LLVMDisposeBinary: 'void LLVMDisposeBinary(void *bin)',
  LLVMObjectFileCopySymbolIterator: 'void *LLVMObjectFileCopySymbolIterator(void *bin)',
  LLVMObjectFileIsSymbolIteratorAtEnd: 'int LLVMObjectFileIsSymbolIteratorAtEnd(void *bin, void *it)',
  LLVMDisposeSymbolIterator: 'void LLVMDisposeSymbolIterator(void *it)',
  LLVMMoveToNextSymbol: 'void LLVMMoveToNextSymbol(void *it)',
  LLVMGetSymbolName: 'void *LLVMGetSymbolName(void *it)',
  LLVMGetSymbolSize: 'uint64_t LLVMGetSymbolSize(void *it)',
  LLVMGetSymbolAddress: 'uint64_t LLVMGetSymbolAddress(void *it)',
  LLVMObjectFileCopySectionIterator: 'void *LLVMObjectFileCopySectionIterator(void *bin)',
  LLVMDisposeSectionIterator: 'void LLVMDisposeSectionIterator(void *it)',
  LLVMMoveToContainingSection: 'void LLVMMoveToContainingSection(void *sect, void *sym)',
  LLVMObjectFileIsSectionIteratorAtEnd: 'int LLVMObjectFileIsSectionIteratorAtEnd(void *bin, void *it)',
  LLVMGetSectionName: 'void *LLVMGetSectionName(void *sect)',

  /* ORC */
  LLVMOrcCreateLLJITBuilder: 'void *LLVMOrcCreateLLJITBuilder(void)',
  LLVMOrcDisposeLLJITBuilder: 'void LLVMOrcDisposeLLJITBuilder(void *B)',
  LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator:
    'void LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator(void *B, void *fn, void *ctx)',
  LLVMOrcCreateLLJIT: 'void *LLVMOrcCreateLLJIT(_Out_ void **J, void *B)',
  LLVMOrcDisposeLLJIT: 'void *LLVMOrcDisposeLLJIT(void *J)',
  LLVMOrcLLJITGetMainJITDylib: 'void *LLVMOrcLLJITGetMainJITDylib(void *J)',
  LLVMOrcLLJITGetExecutionSession: 'void *LLVMOrcLLJITGetExecutionSession(void *J)',
  LLVMOrcLLJITGetGlobalPrefix: 'char LLVMOrcLLJITGetGlobalPrefix(void *J)',
  LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess:
    'void *LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(_Out_ void **G, char prefix, void *filter, void *ctx)',
  LLVMOrcJITDylibAddGenerator: 'void LLVMOrcJITDylibAddGenerator(void *JD, void *G)',
  LLVMOrcExecutionSessionCreateJITDylib:
    'void *LLVMOrcExecutionSessionCreateJITDylib(void *ES, _Out_ void **JD, const char *name)',
  LLVMOrcJITDylibCreateResourceTracker: 'void *LLVMOrcJITDylibCreateResourceTracker(void *JD)',
  LLVMOrcJITDylibGetDefaultResourceTracker: 'void *LLVMOrcJITDylibGetDefaultResourceTracker(void *JD)',
  LLVMOrcResourceTrackerRemove: 'void *LLVMOrcResourceTrackerRemove(void *RT)',
  LLVMOrcReleaseResourceTracker: 'void LLVMOrcReleaseResourceTracker(void *RT)',
  LLVMOrcLLJITAddObjectFile: 'void *LLVMOrcLLJITAddObjectFile(void *J, void *JD, void *buf)',
  LLVMOrcLLJITAddObjectFileWithRT: 'void *LLVMOrcLLJITAddObjectFileWithRT(void *J, void *RT, void *buf)',
  LLVMOrcLLJITLookup: 'void *LLVMOrcLLJITLookup(void *J, _Out_ uint64_t *addr, const char *name)',
  LLVMOrcLLJITGetObjLinkingLayer: 'void *LLVMOrcLLJITGetObjLinkingLayer(void *J)',
  LLVMOrcRTDyldObjectLinkingLayerRegisterJITEventListener:
    'void LLVMOrcRTDyldObjectLinkingLayerRegisterJITEventListener(void *RTDyldObjLinkingLayer, void *Listener)',

  /* JIT event listeners (llvm-c/ExecutionEngine.h) */
  LLVMCreatePerfJITEventListener: 'void *LLVMCreatePerfJITEventListener(void)',
} as const;

type Names = keyof typeof declarations;

/** The bound functions, by their C names. */
export const C = Object.fromEntries(
  Object.entries(declarations).map(([name, proto]) => [name, lib.func(proto)]),
) as unknown as Record<Names, Fn>;

/** Prototype of a diagnostic handler (LLVMDiagnosticHandler). */
export const DiagnosticHandlerProto = koffi.proto('void LLVMDiagnosticHandler(void *info, void *ctx)');

/** Address of a libLLVM function (for native code that calls LLVM itself). */
export function llvmSymbolAddress(name: string): bigint {
  const libdl = koffi.load('libc.so.6');
  const dlopen = libdl.func('void *dlopen(const char *file, int mode)');
  const dlsym = libdl.func('void *dlsym(void *handle, const char *name)');
  const RTLD_NOW = 2;
  const RTLD_NOLOAD = 4;
  const handle = dlopen(LIBLLVM_PATH, RTLD_NOW | RTLD_NOLOAD) as MaybeRef;
  if (!handle) throw new Error(`${LIBLLVM_PATH} is not loaded`);
  const addr = dlsym(handle, name) as MaybeRef;
  if (!addr) throw new Error(`${LIBLLVM_PATH} does not export ${name}`);
  return addr;
}
