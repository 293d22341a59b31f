// Hardhat 3's config for `deno task chain` (`hardhat node`): the defaults, nothing else. The
// contracts are built by `deno task contracts` (npm:solc), not by Hardhat.
export default {};
