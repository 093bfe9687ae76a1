/** Keys of the embedded development mode of `run` (src/supervisor). */
import { key, parse, type SliceOf } from '../spec.js';

export const supervisorKeys = {
  dev: key({
    key: 'dev.enabled', flag: 'dev', placeholder: 'BOOL', boolean: true,
    describe: 'development mode: start a local Dask scheduler and mint development certificates (unencrypted keys under <dir>/issued); refused on a state directory with a production CA', default: false, parse: parse.bool,
  }),
  python: key({
    key: 'dev.python', flag: 'dask-python', placeholder: 'PATH',
    describe: 'the Python interpreter with Dask that --dev runs the scheduler with (and names in the commands it prints); a bare name is looked up on PATH', default: '/usr/bin/python3', path: 'program', parse: parse.string,
  }),
};

export type SupervisorConfig = SliceOf<typeof supervisorKeys>;
