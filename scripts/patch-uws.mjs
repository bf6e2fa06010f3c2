#!/usr/bin/env node
/**
 * postinstall: make uWebSockets.js load on Linux with glibc < 2.38 (Debian 12 / node:20-bookworm has 2.36).
 *
 * WHY
 *   Upstream builds its Linux binaries (uws_linux_<arch>_<abi>.node) on Ubuntu 24.04. There, glibc's headers
 *   redirect sscanf/strtol/strtoul to the C23 variants `__isoc23_sscanf`, `__isoc23_strtol`, `__isoc23_strtoul`,
 *   which exist only since glibc 2.38 (symbol version GLIBC_2.38). On older glibc, loading fails with
 *   "version `GLIBC_2.38' not found". The C23 variants differ from the classic functions ONLY in also
 *   accepting `0b`/`0B` binary literals (strtol/strtoul with base 0 or 2, and scanf's %i / %b); uWS never parses
 *   such input, so binding these calls to the classic functions is behaviour-preserving. Every other symbol
 *   the binaries need is satisfied by glibc 2.36.
 *
 * WHAT (pure byte edits of the ELF file in JS; no patchelf, no C compiler, no extra .so)
 *   For each Linux binary of the running CPU arch (all Node ABIs: so the same node_modules also works if the
 *   project is later run with Node 22/24; other arches are left alone since they cannot run here):
 *   1. Parse the ELF64 section headers; find .dynsym (+ its .dynstr), .gnu.version, .gnu.version_r.
 *   2. In .gnu.version_r, every Vernaux whose GLIBC_x.y is newer than the running glibc is marked weak
 *      (vna_flags |= VER_FLG_WEAK = 0x2), so ld.so no longer refuses the file for lacking that version.
 *   3. Every undefined dynamic symbol bound to such a version must be a `__isoc23_<name>` symbol from the
 *      allow-list below (otherwise we stop with an error: we cannot fix e.g. strlcpy@GLIBC_2.38). We point its
 *      st_name at the `<name>` suffix of the same .dynstr string (st_name += 9; the string table itself is not
 *      changed) and set its .gnu.version entry to 1 (VER_NDX_GLOBAL, unversioned), so ld.so binds it to libc's
 *      classic `<name>` (its default version, e.g. sscanf@GLIBC_2.2.5 on x64). Renaming is safe because
 *      undefined symbols are not part of the .gnu.hash table (checked: their index is below symoffset), and
 *      relocations refer to symbols by index, not by name.
 *   4. Write atomically (temp file + rename), then load the binary for the running ABI in a child process with
 *      LD_BIND_NOW=1 (all symbols resolved eagerly); on failure the original file is restored.
 *   The effect is the same as the "weak GLIBC_2.38 + forwarding shim .so + patchelf --add-needed" approach
 *   (the shim would just forward to these very libc functions), without needing patchelf or cc at install time.
 *
 * WHEN
 *   Only on Linux with glibc < 2.38 (process.report header.glibcVersionRuntime). A no-op on macOS, Windows, musl
 *   (upstream has no musl binaries), glibc >= 2.38, when uWebSockets.js is not installed, and on re-runs (an
 *   already patched binary has no symbol bound to a too-new version and no non-weak too-new Vernaux left).
 *   Where it does not apply it never fails the install; where it applies and fails, it prints an error and
 *   exits 1.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

const TAG = "[patch-uws]";
const log = (msg) => console.log(`${TAG} ${msg}`);

/** glibc functions that got a C23 `__isoc23_` twin (glibc 2.38), each with the same prototype as its classic name. */
const ISOC23 = new Set(
  `scanf fscanf sscanf vscanf vfscanf vsscanf wscanf fwscanf swscanf vwscanf vfwscanf vswscanf
   strtol strtoul strtoll strtoull strtoimax strtoumax strtol_l strtoul_l strtoll_l strtoull_l
   wcstol wcstoul wcstoll wcstoull wcstoimax wcstoumax wcstol_l wcstoul_l wcstoll_l wcstoull_l`.split(
    /\s+/,
  ),
);
const ISOC23_PREFIX = "__isoc23_";

const SHT_DYNSYM = 11;
const SHT_GNU_HASH = 0x6ffffff6;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const VER_FLG_WEAK = 0x2;
const VER_NDX_GLOBAL = 1;
const EM = { x64: 62 /* EM_X86_64 */, arm64: 183 /* EM_AARCH64 */ };

class PatchError extends Error {}

function parseVersion(s) {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(s ?? "");
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}
function cmpVersion(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

function cstr(buf, off) {
  const end = buf.indexOf(0, off);
  if (end < 0)
    throw new PatchError(`unterminated string at 0x${off.toString(16)}`);
  return buf.toString("latin1", off, end);
}

/**
 * Analyse (and, with apply=true, patch in place) an ELF64 little-endian shared object held in `buf`.
 * Returns { weakened: [...version names], renamed: [...symbol names] } of what needs / needed changing.
 */
function patchElf(buf, glibc, apply) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46)
    throw new PatchError("not an ELF file");
  if (buf[4] !== 2 || buf[5] !== 1)
    throw new PatchError("not a little-endian ELF64 file");
  const machine = buf.readUInt16LE(18);
  if (EM[process.arch] !== undefined && machine !== EM[process.arch]) {
    throw new PatchError(
      `ELF machine ${machine} does not match ${process.arch}`,
    );
  }
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  if (!shoff || shentsize < 64 || shoff + shnum * shentsize > buf.length)
    throw new PatchError("bad section header table");

  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    const s = {
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 24)),
      size: Number(buf.readBigUInt64LE(o + 32)),
      link: buf.readUInt32LE(o + 40),
      info: buf.readUInt32LE(o + 44),
      entsize: Number(buf.readBigUInt64LE(o + 56)),
    };
    if (s.type !== 8 /* NOBITS */ && s.offset + s.size > buf.length)
      throw new PatchError(`section ${i} out of bounds`);
    sections.push(s);
  }
  const one = (type, what) => {
    const found = sections.filter((s) => s.type === type);
    if (found.length !== 1)
      throw new PatchError(
        `expected exactly one ${what} section, found ${found.length}`,
      );
    return found[0];
  };
  const dynsym = one(SHT_DYNSYM, ".dynsym");
  const versym = one(SHT_GNU_VERSYM, ".gnu.version");
  const verneed = one(SHT_GNU_VERNEED, ".gnu.version_r");
  const dynstr = sections[dynsym.link];
  if (!dynstr || dynstr.type !== 3 /* STRTAB */)
    throw new PatchError(".dynsym has no string table");
  const str = (off) => {
    if (off >= dynstr.size)
      throw new PatchError("string offset out of .dynstr");
    return cstr(buf, dynstr.offset + off);
  };
  const symCount = dynsym.size / 24;
  if (
    dynsym.entsize !== 24 ||
    !Number.isInteger(symCount) ||
    versym.size !== symCount * 2
  ) {
    throw new PatchError("unexpected .dynsym/.gnu.version layout");
  }
  const gnuHash = sections.find((s) => s.type === SHT_GNU_HASH);
  const symoffset = gnuHash ? buf.readUInt32LE(gnuHash.offset + 4) : symCount;

  // .gnu.version_r: Verneed { u16 version, u16 cnt, u32 file, u32 aux, u32 next }
  //                 Vernaux { u32 hash, u16 flags, u16 other(=version index), u32 name, u32 next }
  const tooNew = new Map(); // version index -> { name, flagsOff, weak }
  let vn = verneed.offset;
  for (let n = 0; n < verneed.info; n++) {
    const cnt = buf.readUInt16LE(vn + 2);
    let va = vn + buf.readUInt32LE(vn + 8);
    for (let k = 0; k < cnt; k++) {
      const name = str(buf.readUInt32LE(va + 8));
      const m = /^GLIBC_(.*)$/.exec(name);
      const v = m && parseVersion(m[1]);
      if (v && cmpVersion(v, glibc) > 0) {
        const flags = buf.readUInt16LE(va + 4);
        tooNew.set(buf.readUInt16LE(va + 6), {
          name,
          flagsOff: va + 4,
          weak: (flags & VER_FLG_WEAK) !== 0,
        });
      }
      const next = buf.readUInt32LE(va + 12);
      if (!next) break;
      va += next;
    }
    const next = buf.readUInt32LE(vn + 12);
    if (!next) break;
    vn += next;
  }

  const renames = [];
  const unfixable = [];
  for (let i = 0; i < symCount; i++) {
    const ndx = buf.readUInt16LE(versym.offset + i * 2) & 0x7fff;
    const ver = tooNew.get(ndx);
    if (!ver) continue;
    const so = dynsym.offset + i * 24;
    const name = str(buf.readUInt32LE(so));
    const shndx = buf.readUInt16LE(so + 6);
    const base = name.startsWith(ISOC23_PREFIX)
      ? name.slice(ISOC23_PREFIX.length)
      : null;
    if (
      shndx === 0 /* SHN_UNDEF */ &&
      base &&
      ISOC23.has(base) &&
      i < symoffset
    ) {
      renames.push({ i, so, name, base });
    } else {
      unfixable.push(`${name}@${ver.name}`);
    }
  }
  if (unfixable.length) {
    throw new PatchError(
      `needs symbols this glibc lacks and that cannot be redirected: ${unfixable.join(", ")}`,
    );
  }

  const toWeaken = [...tooNew.values()].filter((v) => !v.weak);
  if (apply) {
    for (const v of toWeaken)
      buf.writeUInt16LE(
        buf.readUInt16LE(v.flagsOff) | VER_FLG_WEAK,
        v.flagsOff,
      );
    for (const r of renames) {
      buf.writeUInt32LE(buf.readUInt32LE(r.so) + ISOC23_PREFIX.length, r.so);
      buf.writeUInt16LE(VER_NDX_GLOBAL, versym.offset + r.i * 2);
      if (str(buf.readUInt32LE(r.so)) !== r.base)
        throw new PatchError(`rename of ${r.name} failed`);
    }
  }
  return {
    weakened: toWeaken.map((v) => v.name),
    renamed: renames.map((r) => r.name),
  };
}

/** Load a .node file in a fresh process, resolving every symbol up front. Returns an error string or null. */
function tryLoad(file) {
  const r = spawnSync(
    process.execPath,
    ["-e", `require(${JSON.stringify(file)})`],
    {
      env: { ...process.env, LD_BIND_NOW: "1", NODE_OPTIONS: "" },
      encoding: "utf8",
    },
  );
  if (r.status === 0) return null;
  return (
    r.error?.message ??
    r.stderr.split("\n").find((l) => /Error/.test(l)) ??
    r.stderr
  ).trim();
}

function main() {
  if (process.platform !== "linux") return; // macOS / Windows binaries need nothing
  let glibcStr;
  try {
    glibcStr = process.report.getReport().header.glibcVersionRuntime;
  } catch (e) {
    log(`cannot determine the glibc version (${e.message}); skipping.`);
    return;
  }
  if (!glibcStr) return; // musl or another libc: upstream ships no binaries for it, nothing to patch
  const glibc = parseVersion(glibcStr);
  if (!glibc) {
    log(`unrecognised glibc version "${glibcStr}"; skipping.`);
    return;
  }
  if (cmpVersion(glibc, [2, 38, 0]) >= 0) return; // binaries load as shipped

  let pkgDir;
  try {
    const require = createRequire(import.meta.url);
    pkgDir = path.dirname(require.resolve("uWebSockets.js"));
  } catch {
    log("uWebSockets.js is not installed; nothing to patch.");
    return;
  }
  const prefix = `uws_linux_${process.arch}_`;
  const files = fs
    .readdirSync(pkgDir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".node"))
    .sort();
  if (!files.length) {
    log(`no ${prefix}*.node binary in ${pkgDir}; nothing to patch.`);
    return;
  }
  const current = `${prefix}${process.versions.modules}.node`;
  if (!files.includes(current))
    log(
      `warning: no binary for this Node ABI (${current}); uWebSockets.js will not load.`,
    );

  const failures = [];
  for (const f of files) {
    const file = path.join(pkgDir, f);
    try {
      const orig = fs.readFileSync(file);
      const buf = Buffer.from(orig);
      const plan = patchElf(buf, glibc, true);
      const changed = plan.weakened.length > 0 || plan.renamed.length > 0;
      if (changed) {
        const again = patchElf(buf, glibc, false); // the result must now be clean
        if (again.weakened.length || again.renamed.length)
          throw new PatchError("patch did not take effect");
        const tmp = `${file}.patch-${process.pid}`;
        fs.writeFileSync(tmp, buf, { mode: fs.statSync(file).mode });
        fs.renameSync(tmp, file);
      }
      let err = null;
      if (f === current) {
        err = tryLoad(file);
        if (err && changed) fs.writeFileSync(file, orig); // leave the file as installed
      }
      if (err) throw new PatchError(`does not load: ${err}`);
      log(
        changed
          ? `${f}: patched for glibc ${glibcStr} (weak ${plan.weakened.join(", ")}; ${plan.renamed
              .map((n) => `${n} -> ${n.slice(ISOC23_PREFIX.length)}`)
              .join(", ")})${f === current ? ", loads OK" : ""}`
          : `${f}: already compatible with glibc ${glibcStr}${f === current ? ", loads OK" : ""}`,
      );
    } catch (e) {
      const msg = `${f}: ${e instanceof PatchError ? e.message : e.stack}`;
      if (f === current) failures.push(msg);
      else log(`warning: ${msg} (not the binary this Node uses; ignored)`);
    }
  }
  if (failures.length) {
    console.error(
      `${TAG} ERROR: could not make uWebSockets.js load on glibc ${glibcStr}:`,
    );
    for (const m of failures) console.error(`${TAG}   ${m}`);
    console.error(
      `${TAG} Use a base image with glibc >= 2.38 (e.g. Debian 13 / Ubuntu 24.04), or fix scripts/patch-uws.mjs.`,
    );
    process.exitCode = 1;
  }
}

try {
  main();
} catch (e) {
  // Only reachable through an unexpected bug; on non-applicable platforms main() returns before doing anything.
  console.error(`${TAG} ERROR: ${e.stack ?? e}`);
  process.exitCode = 1;
}
