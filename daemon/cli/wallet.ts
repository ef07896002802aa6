// `satroute wallet ...`: through the running daemon's control socket, else in-process holding
// the wallet lock (one writer at a time). Both paths run the same handlers (daemon/control/wallet.ts).
// Only types are imported up front: each action loads what it needs, so `--help` and a call
// through the daemon never load the wallet, cashu-ts or SQLite.
import type { Command } from 'commander';
import type { Config } from '../config.ts';
import { CliError, currentConfig, output, table } from './common.ts';

type Call = (method: string, params?: unknown) => Promise<any>;

interface Session {
  call: Call;
  local: boolean;
  close(): Promise<void>;
}

/** Use the daemon if it answers; otherwise open the wallet here (lock held until close). */
async function session(config: Config, first: { method: string; params?: unknown }): Promise<{ s: Session; result: any }> {
  const { callDaemon, DaemonNotRunningError } = await import('../control/server.ts');
  try {
    const result = await callDaemon(config.dataDir, first.method, first.params ?? {});
    return { s: { call: (m, p) => callDaemon(config.dataDir, m, p ?? {}), local: false, async close() {} }, result };
  } catch (err) {
    if (!(err instanceof DaemonNotRunningError)) throw new CliError((err as Error).message);
  }
  const [{ openWallet }, { walletControlHandlers }] = await Promise.all([import('../../wallet/open.ts'), import('../control/wallet.ts')]);
  const { wallet, close } = openWallet({ dataDir: config.dataDir, mints: config.mints, autoTopup: config.autoTopup });
  try {
    await wallet.recover(); // finish anything a crash left behind before doing more
    const handlers = walletControlHandlers(wallet);
    const call: Call = (m, p) => handlers[m](p ?? {});
    return { s: { call, local: true, close }, result: await call(first.method, first.params) };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Run one wallet command; wallet errors become one line on stderr. */
export async function run(first: { method: string; params?: unknown }, then: (result: any, s: Session, config: Config) => Promise<void> | void): Promise<void> {
  let s: Session | undefined;
  try {
    const config = await currentConfig();
    const opened = await session(config, first);
    s = opened.s;
    await then(opened.result, s, config);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError((err as Error).message);
  } finally {
    await s?.close();
  }
}

// Thousands separators by hand: toLocaleString loads ICU data, ~20 ms of every command's start.
export const sat = (n: number, unit = 'sat') => {
  const [whole, fraction] = String(n).split('.');
  return `${whole.replace(/\B(?=(\d{3})+$)/g, ',')}${fraction ? `.${fraction}` : ''} ${unit}`;
};

function parseSats(text: string): number {
  if (!/^\d+$/.test(text)) throw new CliError(`amount must be a whole number of sats, got "${text}"`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`amount must be a positive number of sats, got "${text}"`);
  return n;
}

async function qr(text: string): Promise<string> {
  const { default: qrcode } = await import('qrcode-terminal');
  let out = '';
  qrcode.generate(text.toUpperCase(), { small: true }, (q) => (out = q));
  return out;
}

export function registerWallet(program: Command): void {
  const wallet = program.command('wallet').description('the Cashu wallet: balance, funding, withdrawals');

  wallet.command('balance').description('balance per mint and unit').option('--json', 'print one JSON document')
    .action((o: { json?: boolean }) => run({ method: 'wallet.balance' }, (b) => output(o.json, b, () => {
      const rows = b.mints.map((m: any) => [m.mint + (m.trusted ? '' : ' (untrusted)'), m.unit, sat(m.unspent, m.unit), sat(m.pending, m.unit)]);
      const held = b.held_sat ? `\nHeld at providers (session balances): ${b.sessions.map((e: any) => `${sat(e.held_sat)} at ${e.provider_url}`).join(', ')}` : '';
      return `${rows.length ? table(['MINT', 'UNIT', 'SPENDABLE', 'PENDING'], rows) + '\n' : 'No ecash yet: fund the wallet with `satroute wallet fund <sats>`.\n'}Total: ${sat(b.total_sat)} spendable${b.pending_sat ? `, ${sat(b.pending_sat)} pending` : ''}${held}`;
    })));

  wallet.command('history').description('the money ledger (newest first)').option('--json', 'print one JSON document')
    .option('--limit <n>', 'at most this many entries', '50').option('--kind <kind>', 'only this kind (funding, receive, payment_sent, ...)')
    .action(async (o: { json?: boolean; limit: string; kind?: string }) => {
      const { LEDGER_KINDS } = await import('../../wallet/ledger.ts');
      if (o.kind && !(LEDGER_KINDS as readonly string[]).includes(o.kind)) throw new CliError(`unknown kind "${o.kind}"; one of: ${LEDGER_KINDS.join(', ')}`);
      return run({ method: 'wallet.history', params: { limit: Number(o.limit) || 50, ...(o.kind ? { kind: o.kind } : {}) } }, (h) => output(o.json, h, () => {
        if (h.entries.length === 0) return 'The ledger is empty.';
        return table(['TIME', 'KIND', 'AMOUNT', 'MINT', 'REF'], h.entries.map((e: any) => [e.time.replace('T', ' ').slice(0, 19), e.kind, `${e.amount > 0 ? '+' : ''}${sat(e.amount, e.unit)}`, e.mint, e.ref ?? '']));
      }));
    });

  wallet.command('fund').argument('<sats>', 'amount in sats').description('fund the wallet over Lightning (pays through NWC when connected)')
    .option('--mint <url>', 'mint to fund (default: the first trusted mint)').option('--timeout <seconds>', 'stop waiting for the payment after this long', '600')
    .option('--no-nwc', 'show the invoice only; do not pay through NWC').option('--json', 'print one JSON document')
    .action(async (amount: string, o: { mint?: string; timeout: string; nwc: boolean; json?: boolean }) => {
      const amountSat = parseSats(amount);
      const timeoutMs = Math.max(1, Number(o.timeout) || 600) * 1000;
      await run({ method: 'wallet.fund.create', params: { amount_sat: amountSat, ...(o.mint ? { mint: o.mint } : {}) } }, async (q, s) => {
        const viaNwc = o.nwc && q.nwc;
        if (!o.json) {
          process.stdout.write(`Invoice for ${sat(amountSat)} at ${q.mint}:\n\n${q.bolt11}\n\n${await qr(q.bolt11)}\n`);
          process.stdout.write(viaNwc ? 'Paying through the connected NWC wallet...\n' : 'Waiting for the payment (Ctrl-C to stop; the quote resumes next time)...\n');
        }
        if (viaNwc) await s.call('wallet.fund.pay_nwc', { quote_id: q.quote_id });
        const deadline = Date.now() + timeoutMs;
        let st = q;
        for (;;) {
          try {
            st = await s.call('wallet.fund.status', { quote_id: q.quote_id });
          } catch (err) {
            if (Date.now() >= deadline) throw err; // mint unreachable until the end
          }
          if (st.state === 'issued' || st.state === 'expired' || st.state === 'lost') break;
          if (Date.now() >= deadline) throw new CliError(`invoice not paid within ${o.timeout} s; quote ${q.quote_id} resumes on the next start`);
          await new Promise((r) => setTimeout(r, 1000));
        }
        if (st.state !== 'issued') throw new CliError(`funding ${st.state}${st.error ? `: ${st.error}` : ''} (quote ${q.quote_id})`);
        output(o.json, { ...st, paid_via: viaNwc ? 'nwc' : 'invoice' }, () => `Funded ${sat(st.amount_sat)} at ${st.mint}.`);
      });
    });

  wallet.command('receive').argument('<token>', 'a cashuA/cashuB token').description('receive a Cashu token (swapped at its mint)')
    .option('--trust', "add the token's mint to the trusted mints first").option('--json', 'print one JSON document')
    .action(async (token: string, o: { trust?: boolean; json?: boolean }) => {
      if (o.trust) {
        const [{ saveConfigFile }, { callDaemon }, { peekToken }, { mintKey }] = await Promise.all([
          import('../config.ts'), import('../control/server.ts'), import('../../wallet/receive.ts'), import('../../wallet/mints.ts'),
        ]);
        const config = await currentConfig();
        const mint = mintKey(peekToken(token).mint);
        if (!config.mints.map(mintKey).includes(mint)) {
          saveConfigFile(config.dataDir, { mints: [...config.mints, mint] });
          if (!o.json) process.stdout.write(`Trusting ${mint} from now on (saved in satroute.json).\n`);
        }
        // Tell a running daemon too; in-process, the reloaded config already trusts it.
        await callDaemon(config.dataDir, 'wallet.trust', { mint }).catch(() => undefined);
      }
      await run({ method: 'wallet.receive', params: { token } }, (r) => output(o.json, r, () =>
        `Received ${sat(r.amount_sat)} from ${r.mint}${r.fee_sat ? ` (token ${sat(r.token_amount_sat)}, mint fee ${sat(r.fee_sat)})` : ''}.`));
    });

  wallet.command('withdraw').argument('<bolt11>', 'Lightning invoice to pay').description('pay a Lightning invoice from the wallet')
    .option('--mint <url>', 'mint to spend from (default: the one with the most sats)').option('--json', 'print one JSON document')
    .action((bolt11: string, o: { mint?: string; json?: boolean }) => run({ method: 'wallet.withdraw', params: { bolt11, ...(o.mint ? { mint: o.mint } : {}) } }, (r) => {
      if (r.state === 'failed') throw new CliError(`withdrawal failed (quote ${r.quote_id}); nothing was spent`);
      output(o.json, r, () => r.state === 'paid'
        ? `Paid ${sat(r.amount_sat)} (Lightning fee ${sat(r.lightning_fee_sat)}${r.input_fee_sat ? `, mint fee ${sat(r.input_fee_sat)}` : ''}; change back ${sat(r.change_sat)}).`
        : `Payment of ${sat(r.amount_sat)} is pending at the mint; it settles automatically (quote ${r.quote_id}).`);
    }));

  wallet.command('nwc').argument('<uri>', 'nostr+walletconnect://... connection string').description('connect a Nostr Wallet Connect wallet; `wallet fund` then pays through it')
    .option('--json', 'print one JSON document')
    .action((uri: string, o: { json?: boolean }) => run({ method: 'wallet.nwc', params: { uri } }, (r) => output(o.json, r, () =>
      `Connected to NWC wallet ${r.alias || '(no alias)'} via ${r.relays.join(', ')}${r.balance_msat !== null ? `, balance ${sat(Math.floor(r.balance_msat / 1000))}` : ''}.\n` +
      '`satroute wallet fund <sats>` now pays through it.')));
}
