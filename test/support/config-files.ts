// Config files for config tests: each in its own temp directory (a fabric.yaml's relative
// paths resolve beside it), and the errors a refused one reports, as file:line:col lines.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFabricConfig } from '../../src/config/load.ts';
import { ConfigError, formatIssue } from '../../src/config/issues.ts';
import { tempDir } from './temp-dir.ts';

export interface ConfigFiles {
  /** Writes `text` as fabric.yaml in a fresh directory; returns its path. */
  file(text: string): string;
  /** The error lines of a config that must be refused. */
  errorsOf(path: string, env?: NodeJS.ProcessEnv): string[];
}

export function configFiles(prefix: string): ConfigFiles {
  const dir = tempDir(prefix);
  let n = 0;
  return {
    file(text) {
      const d = join(dir, `c${n++}`);
      mkdirSync(d, { recursive: true });
      const p = join(d, 'fabric.yaml');
      writeFileSync(p, text);
      return p;
    },
    errorsOf(path, env = {}) {
      try {
        loadFabricConfig(path, env);
      } catch (e) {
        assert.ok(e instanceof ConfigError);
        return e.issues.filter((i) => i.severity === 'error').map(formatIssue);
      }
      assert.fail('expected the config to be refused');
    },
  };
}
