// Runs TypeScript scripts (db:migrate, bench, secrets:rotate) directly with SWC, which keeps
// the decorator metadata NestJS needs for dependency injection.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

register('@swc-node/register/esm', pathToFileURL('./'));
