import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('@swc-node/register/esm', pathToFileURL('./'));
export default async function () {
  const { default: teardown } = await import('./global-teardown.ts');
  await teardown();
}
