// What the kernel knows about a process: CPU seconds (utime + stime from /proc/<pid>/stat) and
// resident memory (VmRSS). Linux only, like the servers this benchmark drives.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // getconf is missing on some minimal images; 100 is the value on every common Linux build.
}

/** CPU seconds a process has used (user + system), or null if it is gone. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** Resident set size in bytes, or null if the process is gone. */
export function rssBytes(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Pids whose command name (/proc/<pid>/comm) is `name`. */
export function pidsNamed(name) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** The open-files limit of this process (soft, hard). */
export function openFilesLimit() {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limits);
    const n = (v) => (v === 'unlimited' ? Infinity : Number(v));
    return match ? { soft: n(match[1]), hard: n(match[2]) } : { soft: 1024, hard: 1024 };
  } catch {
    return { soft: 1024, hard: 1024 };
  }
}

function read(path) {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function git(...args) {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** Facts about the machine and the checkout, recorded with every result. */
export function machineFacts(root) {
  const cpus = os.cpus();
  let dirty = null;
  try {
    // diff-index only reads; `git status` could rewrite the index.
    execFileSync('git', ['-C', root, 'diff-index', '--quiet', 'HEAD', '--'], { stdio: 'ignore' });
    dirty = false;
  } catch (error) {
    if (error.status === 1) dirty = true;
  }
  return {
    gitCommit: git('-C', root, 'rev-parse', 'HEAD'),
    gitDirty: dirty,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverageAtStart: os.loadavg().map((v) => Math.round(v * 100) / 100),
    openFilesLimit: openFilesLimit(),
    ephemeralPorts: read('/proc/sys/net/ipv4/ip_local_port_range')?.split(/\s+/).map(Number) ?? null,
    somaxconn: Number(read('/proc/sys/net/core/somaxconn')) || null,
  };
}
