/**
 * Tests of the data directory rules: a missing directory and a journal without an identity are
 * refused without `init`; the lock refuses a second holder (another open in this process, and
 * another process), names its pid, and is taken over once its holder is gone (SIGKILL).
 *
 * @module
 */
import assert from "node:assert/strict";
import { checkDataDir, lockDataDir } from "./data_dir.ts";

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "data-dir-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("checkDataDir() refuses a missing directory unless init, and creates it with init", () =>
  withDir((dir) => {
    const path = `${dir}/node`;
    assert.throws(() => checkDataDir(path), {
      name: "DataDirError",
      code: "missing",
      message: new RegExp(`Data directory "${path}" does not exist: start with --init`),
    });
    assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
    assert.deepEqual(checkDataDir(path, { init: true }), {
      created: true,
      hasIdentity: false,
      hasJournal: false,
    });
    assert.equal(Deno.statSync(path).isDirectory, true);
    if (Deno.build.os !== "windows") assert.equal(Deno.statSync(path).mode! & 0o777, 0o700);
    // Existing and empty: made for the node, no init needed.
    assert.equal(checkDataDir(path).created, false);
    Deno.writeTextFileSync(`${dir}/file`, "");
    assert.throws(() => checkDataDir(`${dir}/file`), { code: "not_a_directory" });
  }));

Deno.test("checkDataDir() refuses a journal without an identity key unless init", () =>
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/journal.sqlite`, "");
    assert.throws(() => checkDataDir(dir), {
      name: "DataDirError",
      code: "no_identity",
      message: /has a journal but no identity key \(identity.key\)/,
    });
    assert.equal(checkDataDir(dir, { init: true }).hasJournal, true);
    Deno.writeTextFileSync(`${dir}/identity.key`, "");
    assert.deepEqual(checkDataDir(dir), { created: false, hasIdentity: true, hasJournal: true });
  }));

Deno.test("lockDataDir() refuses a second holder in this process and releases", () =>
  withDir((dir) => {
    const lock = lockDataDir(dir);
    assert.equal(Deno.readTextFileSync(`${dir}/lock`), `${Deno.pid}\n`);
    assert.throws(() => lockDataDir(dir), {
      name: "DataDirError",
      code: "locked",
      holder: Deno.pid,
      message: new RegExp(`is in use by process ${Deno.pid} \\(lock file ${dir}/lock\\)`),
    });
    lock.release();
    lock.release();
    const again = lockDataDir(dir);
    assert.equal(again.tookOverFrom, null, "a released lock names no one");
    again.release();
  }));

Deno.test("lockDataDir() refuses while another process holds it, and takes it over once that process is killed", async () => {
  await withDir(async (dir) => {
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { lockDataDir } from ${
          JSON.stringify(new URL("./data_dir.ts", import.meta.url).href)
        };
         const lock = lockDataDir(${JSON.stringify(dir)}); console.log("locked");
         setInterval(() => lock.path, 1_000);`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = holder.stdout.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /locked/);
    try {
      assert.throws(() => lockDataDir(dir), {
        name: "DataDirError",
        code: "locked",
        holder: holder.pid,
        message: new RegExp(`in use by process ${holder.pid}`),
      });
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
      reader.releaseLock();
      await holder.stdout.cancel();
    }
    // The lock file still names the dead holder; the kernel dropped its lock.
    assert.equal(Deno.readTextFileSync(`${dir}/lock`).trim(), String(holder.pid));
    const lock = lockDataDir(dir);
    assert.equal(lock.tookOverFrom, holder.pid);
    assert.equal(Deno.readTextFileSync(`${dir}/lock`), `${Deno.pid}\n`);
    lock.release();
  });
});
