/**
 * The layers of src/ (docs/architecture.md), checked by test/unit/layers.test.ts:
 * a wrong import fails `npm test`. Rules that do not hold yet are issue 12's work.
 */
const layer = (name) => `^src/${name}/`;

module.exports = {
  forbidden: [
    {
      name: 'no-circle',
      comment: 'No module imports itself back, at run time or for its types alone.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'kernel-is-the-bottom',
      comment:
        'The kernel layer imports nothing of ours but errors, logs, the crash hook, paths and the address module.',
      severity: 'error',
      from: { path: layer('kernel') },
      to: {
        path: '^src/',
        pathNot: [
          '^src/kernel/',
          '^src/errors\\.ts$',
          '^src/log\\.ts$',
          '^src/crash\\.ts$',
          '^src/paths\\.ts$',
          '^src/address\\.ts$',
        ],
      },
    },
    {
      name: 'address-is-below-the-kernel',
      comment:
        'The address module, shared by the kernel, the IPAM and everything above, imports nothing of ours.',
      severity: 'error',
      from: { path: '^src/address\\.ts$' },
      to: { path: '^src/' },
    },
    {
      name: 'drivers-below-the-controller',
      comment: 'Drivers never see the store, the controller or an entry point.',
      severity: 'error',
      from: { path: layer('drivers') },
      to: { path: ['^src/kv/', '^src/controller/', '^src/server/', '^src/cli/', '^src/cni/'] },
    },
    {
      name: 'controller-knows-drivers-by-contract',
      comment:
        'The controller sees drivers, the firewall and IPAM through src/core contracts; src/daemon wires the real ones.',
      severity: 'error',
      // Its fake (testing/), a stand-in for the whole API, calls the drivers' pure option parsing.
      from: { path: layer('controller'), pathNot: '^src/controller/testing/' },
      to: {
        path: ['^src/drivers/', '^src/firewall/', '^src/server/', '^src/cli/', '^src/cni/', '^src/daemon/'],
      },
    },
    {
      name: 'entry-points-speak-the-api',
      comment:
        'The CLI, the servers and the CNI plugin reach the kernel, the store, drivers and the firewall only through the API (controller/api.ts); src/daemon composes the real ones.',
      severity: 'error',
      from: { path: ['^src/cli/', '^src/server/', '^src/cni/'] },
      to: {
        path: [
          '^src/kernel/',
          '^src/kv/',
          '^src/drivers/',
          '^src/firewall/',
          '^src/controller/',
          '^src/sandbox/',
        ],
        pathNot: '^src/controller/api\\.ts$',
      },
    },
    {
      name: 'only-the-ipam-plugin-sees-the-ipam',
      comment:
        "netctl-ipam (src/cni/ipam.ts) is an IPAM plugin, so it works on the IPAM's own interface; every other entry point reaches addresses through the API.",
      severity: 'error',
      from: { path: ['^src/cli/', '^src/server/', '^src/cni/'], pathNot: '^src/cni/(ipam|plugins)\\.ts$' },
      to: { path: '^src/ipam/' },
    },
    {
      name: 'store-and-ipam-know-no-network',
      comment: 'The store and the IPAM are below everything that makes networks.',
      severity: 'error',
      from: { path: ['^src/kv/', '^src/ipam/'] },
      to: {
        path: [
          '^src/controller/',
          '^src/drivers/',
          '^src/kernel/',
          '^src/server/',
          '^src/cli/',
          '^src/cni/',
          '^src/firewall/',
        ],
      },
    },
    {
      name: 'core-is-shared-vocabulary',
      comment: "core/ (model, contracts, schemas) imports only the kernel's types and errors.",
      severity: 'error',
      from: { path: layer('core') },
      to: {
        path: [
          '^src/kv/',
          '^src/controller/',
          '^src/drivers/',
          '^src/server/',
          '^src/cli/',
          '^src/cni/',
          '^src/ipam/',
          '^src/firewall/',
        ],
      },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
  },
};
