import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, ConfigError, loadConfig } from '../../src/config/load.js';

describe('config', () => {
  it('starts from embedded defaults with no file at all', () => {
    const cfg = loadConfig({});
    expect(cfg.http.port).toBe(8080);
    expect(cfg.sip.udp).toEqual({ host: '0.0.0.0', port: 5060 });
    expect(cfg.whatsapp.provider).toBe('meta');
    expect(cfg.media.engine).toBe('embedded');
    expect(Object.isFrozen(cfg) && Object.isFrozen(cfg.sip)).toBe(true);
  });

  it('takes secrets from the environment, not the file', () => {
    const cfg = buildConfig({ whatsapp: { provider: 'meta' } }, { WA_ACCESS_TOKEN: 'tok', WA_APP_SECRET: 'sec', WA_VERIFY_TOKEN: 'ver' });
    expect(cfg.whatsapp).toMatchObject({ accessToken: 'tok', appSecret: 'sec', verifyToken: 'ver' });
    const d = buildConfig({ whatsapp: { provider: '360dialog' } }, { WA_360DIALOG_API_KEY: 'k' });
    expect(d.whatsapp).toMatchObject({ provider: '360dialog', apiKey: 'k', baseUrl: 'https://waba-v2.360dialog.io' });
  });

  it('lists every problem at once', () => {
    let err: unknown;
    try {
      buildConfig({
        http: { port: 'eighty' },
        sip: { udp: null, tcp: null },
        routing: { default: 'http://not-sip', rules: [{ target: 'sip:a@b', hours: { timezone: 'Mars/Olympus', open: '09:00', close: '17:00' } }] },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toContain('http.port');
    expect(problems).toContain('routing.default');
    expect((err as ConfigError).problems.length).toBeGreaterThanOrEqual(2);
  });

  it('reports cross-field problems (no SIP transport, unknown time zone)', () => {
    expect(() => buildConfig({ sip: { udp: null, tcp: null } })).toThrow(/at least one of sip.udp and sip.tcp/);
    expect(() =>
      buildConfig({ routing: { rules: [{ target: 'sip:a@b', hours: { timezone: 'Mars/Olympus', open: '09:00', close: '17:00' } }] } }),
    ).toThrow(/unknown time zone "Mars\/Olympus"/);
  });

  it('reads YAML and JSON files named by WA_SIP_BRIDGE_CONFIG, and says which file is broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'a.yaml'), 'http:\n  port: 9090\nrouting:\n  default: sip:q@pbx\n');
    expect(loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'a.yaml'), WA_APP_SECRET: 's' }).http.port).toBe(9090);
    writeFileSync(join(dir, 'b.json'), '{"http": {"port": 9191}}');
    expect(loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'b.json'), WA_APP_SECRET: 's' }).http.port).toBe(9191);
    writeFileSync(join(dir, 'c.json'), '{"http": ');
    expect(() => loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'c.json') })).toThrow(/cannot parse config file .*c.json/);
    expect(() => loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'missing.yaml') })).toThrow(/cannot read config file/);
  });

  it('the shipped example config is valid', () => {
    const cfg = loadConfig({ WA_SIP_BRIDGE_CONFIG: 'config/example.yaml', WA_APP_SECRET: 's' });
    expect(cfg.routing.rules.map((r) => r.name)).toEqual(['portuguese-speakers', 'sales-office-hours', 'sales-after-hours']);
  });

  it('refuses to start without webhook authentication unless the config says so explicitly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'plain.yaml'), 'whatsapp:\n  provider: meta\n');
    expect(() => loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'plain.yaml') })).toThrow(/no webhook authentication: set WA_APP_SECRET/);
    writeFileSync(join(dir, 'open.yaml'), 'whatsapp:\n  provider: meta\n  allowUnsignedWebhooks: true\n');
    expect(loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'open.yaml') }).whatsapp.allowUnsignedWebhooks).toBe(true);
    // 360dialog: the shared header authenticates; its value comes from the environment
    writeFileSync(join(dir, 'd360.yaml'), 'whatsapp:\n  provider: 360dialog\n  webhookAuthHeader: { name: X-Bridge-Key }\n');
    expect(() => loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'd360.yaml') })).toThrow(/WA_WEBHOOK_HEADER_SECRET/);
    const d = loadConfig({ WA_SIP_BRIDGE_CONFIG: join(dir, 'd360.yaml'), WA_WEBHOOK_HEADER_SECRET: 'v' });
    expect(d.whatsapp).toMatchObject({ provider: '360dialog', webhookAuthHeader: { name: 'X-Bridge-Key', value: 'v' } });
    expect(() => buildConfig({ whatsapp: { provider: 'meta', allowUnsignedWebhooks: 'yes' } })).toThrow(ConfigError);
  });

  it('with no config file at all, runs the local trial: unsigned webhooks from loopback only', () => {
    expect(loadConfig({}).whatsapp.allowUnsignedWebhooks).toBe('loopback');
    expect(loadConfig({ WA_APP_SECRET: 's' }).whatsapp.allowUnsignedWebhooks).toBe(false);
    expect(loadConfig({}).whatsapp).toMatchObject({ maxWebhookAgeSec: 60, maxEventsPerPost: 50, retry: { attempts: 3 } });
  });
});
