// /proc/PID/stat (and /proc/PID/task/TID/stat), read as man proc_pid_stat lays it out.

import { readFileSync } from 'node:fs';

/**
 * The command name and the fields after it: fields[0] is the state (the man page's field 3),
 * fields[16] the nice value (19), fields[19] the start time in clock ticks after boot (22).
 * undefined where the file cannot be read (no such process, no /proc).
 */
export function readProcStat(path: string): { comm: string; fields: string[] } | undefined {
  let stat: string;
  try {
    stat = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  // "PID (COMM) STATE …": COMM may hold spaces and parentheses; the fields follow the last ')'.
  const close = stat.lastIndexOf(')');
  return { comm: stat.slice(stat.indexOf('(') + 1, close), fields: stat.slice(close + 2).split(' ') };
}
