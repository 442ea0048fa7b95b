import t from 'tap';
import { MtpdError, withCallSite } from '../src/errors.js';

t.test('MtpdError carries a code and a cause', async (t) => {
  const cause = new Error('inner');
  const e = new MtpdError('ERR_MTPD_CONFIG', 'bad key', { cause });
  t.equal(e.code, 'ERR_MTPD_CONFIG');
  t.equal(e.name, 'MtpdError');
  t.equal(e.cause, cause);
  t.ok(e instanceof Error);
});

t.test('withCallSite replaces a native stack with the JS call site', async (t) => {
  const site = new Error('site').stack;
  const native = new TypeError('expected images[0] to be a tensor');
  withCallSite(native, site);
  t.match(native.stack ?? '', /^TypeError: expected images\[0\] to be a tensor\n/);
  t.match(native.stack ?? '', /errors\.test/);
});
