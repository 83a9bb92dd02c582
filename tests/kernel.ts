// Shared by the test files that drive a kernel directly: one kernel of a
// prepared image with an installer, disposed after the body.
import { KernelInstance } from '../dist/src/kernel/instance.js';
import { type ExecuteRequest, instanceOptions, type PreparedBoot } from '../dist/src/kernel/run.js';
import { Installer } from '../dist/src/rejit/installer.js';

export type Kernel = { instance: KernelInstance; installer: Installer };

export async function withKernel<T>(p: PreparedBoot, opts: ExecuteRequest, body: (k: Kernel) => Promise<T>): Promise<T> {
  const instance = KernelInstance.load(p.compiled.objects, instanceOptions(p, opts).opts);
  const installer = new Installer(instance, p);
  try {
    return await body({ instance, installer });
  } finally {
    await instance.dispose();
  }
}
