/**
 * @fileoverview De-specialization: before a sysctl that live code folded
 * changes, that code stops running.  The functions of `versions` get their
 * boot code back in one transition, then the host waits until no kernel
 * task is inside the folded code any more (the grace period a retired
 * version's freeing waits for: a task suspended past the guard would
 * otherwise resume with the old constant).  Only then may the caller write
 * the value.  Linux's static keys face the same problem when a key flips.
 */
import type { Installer } from '../rejit/installer.js';
import type { CodeVersion } from '../rejit/versions.js';

export class DespecializeTimeout extends Error {}

/** Put boot code back for the live `versions`; resolve once no kernel task is inside any of them. */
export async function despecialize(installer: Installer, versions: readonly CodeVersion[], timeoutMs = 2000): Promise<void> {
  const live = versions.filter((v) => v.state === 'live');
  if (!live.length) return;
  await installer.commit(
    [],
    live.map((v) => v.fn),
  );
  if (!(await installer.waitGrace(live, timeoutMs))) {
    throw new DespecializeTimeout(`a kernel task stayed inside specialized code of ${live.map((v) => v.fn).join(', ')} for ${timeoutMs} ms`);
  }
}
