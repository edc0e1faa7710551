/**
 * What every JobStore must do, as node:test cases registered against a factory: the SQLite and the Redis
 * store run the same cases (test/e2e/store-contract.test.ts), so they cannot drift apart.
 *
 * ```ts
 * storeContract('SQLite', async () => { ...; return { store, second, close } });
 * ```
 */
import { describe, type TestContext } from 'node:test';
import { admissionCases } from './store-contract-admission.js';
import { queryCases } from './store-contract-queries.js';
import { stateCases } from './store-contract-states.js';
import type { OpenedStore, StoreFactory } from './store-fixtures.js';

export type { OpenedStore, StoreFactory } from './store-fixtures.js';

export function storeContract(name: string, open: StoreFactory): void {
  describe(`job store contract (${name})`, () => {
    async function fresh(t: TestContext): Promise<OpenedStore> {
      const opened = await open();
      t.after(() => opened.close());
      return opened;
    }
    admissionCases(fresh);
    stateCases(fresh);
    queryCases(fresh);
  });
}
