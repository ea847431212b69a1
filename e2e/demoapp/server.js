// Demo app for the settle e2e sandbox: one color (blue or green) of a
// blue-green release, run under PM2. No framework, one dependency (pg).
//
// Environment: PORT, COLOR, DATABASE_URL (app role DSN), APP_SECRET (a canary
// that tests use to prove settle never leaks PM2's env; never printed here).
//
// Endpoints:
//   GET /api/health -> 200 {"status":"ok","color":COLOR,"pid":...}
//   GET /api/leads  -> 200 {"count":N,"color":COLOR} from SELECT count(*) FROM leads,
//                      503 {"error":"database unavailable"} on any DB error
//
// Test hooks, read from the process's own cwd (its release dir):
//   crash-on-start  exists at start -> message on stderr, exit(1); lets tests make
//                   a color fail to come online.
//   fail-rate       read at every request: a float 0..1, the fraction of requests
//                   answered 500. It spares /api/health unless the content ends
//                   with " health" (e.g. "1 health"), so tests can break the
//                   app behind a still-green health check, or break both.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { Pool } = require('pg');

const port = Number(process.env.PORT);
const color = process.env.COLOR || 'unknown';

if (fs.existsSync(path.join(process.cwd(), 'crash-on-start'))) {
  process.stderr.write(`demo-${color}: crash-on-start present, exiting\n`);
  process.exit(1);
}
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write(`demo-${color}: PORT must be set\n`);
  process.exit(1);
}

// A pool so that connections killed by the server (e.g. a DB swap that
// terminates backends) are dropped and the next request reconnects.
const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: 4,
  idleTimeoutMillis: 5000,
  connectionTimeoutMillis: 2000,
});
// Idle clients that die emit 'error' on the pool; unhandled it would crash us.
pool.on('error', (err) => {
  process.stderr.write(`demo-${color}: idle pg client error: ${err.code || err.message}\n`);
});

function failRate() {
  let raw;
  try {
    raw = fs.readFileSync(path.join(process.cwd(), 'fail-rate'), 'utf8').trim();
  } catch (_) {
    return { rate: 0, health: false };
  }
  const health = / health$/.test(raw);
  const rate = parseFloat(raw);
  return { rate: Number.isFinite(rate) ? Math.min(Math.max(rate, 0), 1) : 0, health };
}

function send(res, code, body) {
  const data = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const isHealth = url.pathname === '/api/health';
  const fr = failRate();
  if ((fr.health || !isHealth) && fr.rate > 0 && Math.random() < fr.rate) {
    return send(res, 500, { error: 'injected failure', color });
  }
  if (isHealth) {
    return send(res, 200, { status: 'ok', color, pid: process.pid });
  }
  if (url.pathname === '/api/leads') {
    try {
      const r = await pool.query('SELECT count(*)::int AS n FROM leads');
      return send(res, 200, { count: r.rows[0].n, color });
    } catch (err) {
      process.stderr.write(`demo-${color}: leads query failed: ${err.code || err.message}\n`);
      return send(res, 503, { error: 'database unavailable', color });
    }
  }
  return send(res, 404, { error: 'not found', color });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch(() => send(res, 500, { error: 'internal', color }));
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`demo-${color}: listening on 127.0.0.1:${port}\n`);
  if (process.send) process.send('ready');
});

function shutdown() {
  server.close();
  pool.end().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
