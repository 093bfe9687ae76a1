/** Keys of the embedded development mode of `run` (src/supervisor). */
import { parse, type KeySpec } from '../spec.js';

const env = (k: string) => `SCHEDULER_GATEWAY_${k.toUpperCase().replace(/[.-]/g, '_')}`;

export const supervisorKeys: KeySpec[] = [
  {
    key: 'dev.enabled', flag: 'dev', env: env('dev'), placeholder: 'BOOL', boolean: true,
    describe: 'development mode: start a local Dask scheduler and mint development certificates (unencrypted keys under <dir>/issued); refused on a state directory with a production CA', default: false, parse: parse.bool,
  },
  {
    key: 'dev.python', flag: 'dask-python', env: env('dask_python'), placeholder: 'PATH',
    describe: 'the Python interpreter with Dask that --dev runs the scheduler with (and names in the commands it prints)', default: '/usr/bin/python3', parse: parse.string,
  },
];
