/**
 * Makes the account nkey pair of the NATS auth callout (deploy/nats/accounts.conf): the control
 * plane signs each device's NATS user with the seed, and every nats-server trusts what the public
 * key signed (its `issuer`).
 *
 *   npx tsx scripts/nats-callout-key.ts
 *       prints both: the seed (SA…, a secret) and the public key (A…)
 *   npx tsx scripts/nats-callout-key.ts --seed-file deploy/compose/secrets/nats-callout-issuer.seed
 *       writes the seed to that file (mode 0600, never over an existing one) and prints only
 *       EDGEFORGE_NATS_CALLOUT_ISSUER=<public key>, for compose's .env
 *
 * The seed goes to the control plane as the file EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE names;
 * the public key to the NATS servers as EDGEFORGE_NATS_CALLOUT_ISSUER (deploy/README.md).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createAccount } from '@nats-io/nkeys';

/** A fresh account nkey pair: the seed (SA…) and its public key (A…). */
export function newCalloutIssuer(): { seed: string; publicKey: string } {
  const account = createAccount();
  return { seed: new TextDecoder().decode(account.getSeed()), publicKey: account.getPublicKey() };
}

function main(): void {
  const { values } = parseArgs({ options: { 'seed-file': { type: 'string' } }, strict: true });
  const { seed, publicKey } = newCalloutIssuer();
  const seedFile = values['seed-file'];
  if (seedFile === undefined) {
    process.stdout.write(
      `seed:       ${seed}\n` +
        `public key: ${publicKey}\n` +
        '\nThe seed is a secret: the control plane reads it from the file named by ' +
        'EDGEFORGE_NATS_CALLOUT_ISSUER_SEED_FILE.\nThe public key is what the NATS servers get as ' +
        'EDGEFORGE_NATS_CALLOUT_ISSUER.\n',
    );
    return;
  }
  try {
    // 'wx': an existing seed is the fleet's current issuer; replacing it must be deliberate.
    writeFileSync(seedFile, `${seed}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    process.stderr.write(
      `cannot write ${seedFile}: ${(err as Error).message}` +
        ((err as NodeJS.ErrnoException).code === 'EEXIST'
          ? ' (it holds an issuer seed already: delete it first to make a new one)\n'
          : '\n'),
    );
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`EDGEFORGE_NATS_CALLOUT_ISSUER=${publicKey}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
