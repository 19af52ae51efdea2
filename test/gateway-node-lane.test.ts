// The whole gateway suite again with gateway.fast_lane off: node:http carries every request, so
// both carriers of an Exchange (src/http/exchange.ts) meet the same contract.

process.env.FABRIC_TEST_FAST_LANE = '0';
await import('./gateway.test.ts');
