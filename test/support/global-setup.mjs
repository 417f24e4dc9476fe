// Jest loads global setup outside its module system: register SWC, then run the TypeScript.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('@swc-node/register/esm', pathToFileURL('./'));
export default async function () {
  const { default: setup } = await import('./global-setup.ts');
  await setup();
}
