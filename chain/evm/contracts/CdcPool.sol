// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CiroToken} from "./CiroToken.sol";

/// @notice What the pool asks the job manager: the stake a node's open jobs lock.
interface IStakeLocks {
    function lockOf(bytes32 node) external view returns (uint256);
}

/// @title CdcPool: node identities, stake and unbonding, the verifier set, slashing, reputation.
/// @notice A node is named by its node id (a libp2p peer id); `keccak256(bytes(nodeId))` is its
/// key, bound once to one account by `registerNode`. Its attestation key is that account
/// (secp256k1, checked with ecrecover), announced once by `registerKey`. Stake is `staked -
/// unbonding - slashed - withdrawn` ("bonded", excluding unbonding requests). Only the job
/// manager slashes, chooses verifiers and moves reputation.
contract CdcPool {
    struct Unbonding {
        uint128 amount;
        uint64 unlockAtMs;
        uint64 seq;
    }

    struct Node {
        address account;
        int16 reputationDelta; // reputation = 500 + reputationDelta, in [0, 1000]
        bool keyRegistered;
        bool verifier;
        uint32 chosen;
        uint32 answered;
        uint256 staked;
        uint256 unbonding;
        uint256 slashed;
        uint256 withdrawn;
    }

    CiroToken public immutable token;
    address public immutable deployer;
    address public immutable treasury;
    uint64 public immutable unbondingSeconds;
    uint256 public immutable minVerifierBond;
    IStakeLocks public manager;
    /// A counter of unstake requests, so a slash finds the requests made after an assignment.
    uint64 public seq;

    uint256 public totalStaked;
    uint256 public totalSlashed;
    uint256 public totalWithdrawn;

    mapping(bytes32 => Node) internal nodes;
    mapping(bytes32 => Unbonding[]) internal requests;
    mapping(address => bytes32) public keyOf;
    mapping(bytes32 => string) public nodeIdOf;
    bytes32[] public verifiers;

    event NodeRegistered(address indexed account, bytes32 indexed node, string nodeId);
    event KeyRegistered(bytes32 indexed node, address account);
    event VerifierRegistered(bytes32 indexed verifier);
    event WorkerStaked(bytes32 indexed worker, uint256 amount, uint256 total);
    event UnstakeRequested(bytes32 indexed worker, uint256 amount, uint64 unlockAt);
    event StakeWithdrawn(bytes32 indexed worker, uint256 amount);
    event ReputationUpdated(bytes32 indexed worker, uint16 score);

    error Refused(string code, string reason);

    constructor(CiroToken token_, address treasury_, uint64 unbondingSeconds_, uint256 minVerifierBond_) {
        token = token_;
        deployer = msg.sender;
        treasury = treasury_;
        unbondingSeconds = unbondingSeconds_;
        minVerifierBond = minVerifierBond_;
    }

    modifier onlyManager() {
        if (msg.sender != address(manager)) revert Refused("not_authorized", "Only the job manager may do this");
        _;
    }

    /// @notice Binds the job manager, once, by the deployer.
    function setManager(IStakeLocks manager_) external {
        if (msg.sender != deployer || address(manager) != address(0)) {
            revert Refused("not_authorized", "Cannot set the manager: only the deployer, once");
        }
        manager = manager_;
    }

    function registerNode(string calldata nodeId) external {
        uint256 length = bytes(nodeId).length;
        if (length == 0 || length > 512) {
            revert Refused("invalid_amount", "Cannot register a node id: it must be 1 to 512 bytes");
        }
        bytes32 key = keccak256(bytes(nodeId));
        if (keyOf[msg.sender] != bytes32(0)) {
            revert Refused("invalid_state", "Cannot register a node id: this account has one");
        }
        if (nodes[key].account != address(0)) {
            revert Refused("not_authorized", "Cannot register a node id: another account has it");
        }
        keyOf[msg.sender] = key;
        nodes[key].account = msg.sender;
        nodeIdOf[key] = nodeId;
        emit NodeRegistered(msg.sender, key, nodeId);
    }

    /// @notice Announces that this account signs the node's attestations (once).
    function registerKey() external {
        bytes32 key = _caller();
        if (nodes[key].keyRegistered) revert Refused("invalid_state", "Cannot register a key: it has one already");
        nodes[key].keyRegistered = true;
        emit KeyRegistered(key, msg.sender);
    }

    function accountOf(bytes32 node) external view returns (address) {
        return nodes[node].account;
    }

    /// @notice The account whose signatures count for `node`, or 0 before registerKey.
    function signerOf(bytes32 node) external view returns (address) {
        Node storage n = nodes[node];
        return n.keyRegistered ? n.account : address(0);
    }

    function bondedOf(bytes32 node) public view returns (uint256) {
        Node storage n = nodes[node];
        return n.staked - n.unbonding - n.slashed - n.withdrawn;
    }

    function unbondingOf(bytes32 node) external view returns (uint256) {
        return nodes[node].unbonding;
    }

    function reputationOf(bytes32 node) public view returns (uint16) {
        return uint16(int16(500) + nodes[node].reputationDelta);
    }

    function verifierRecord(bytes32 node) external view returns (bool verifier, uint32 chosen, uint32 answered) {
        Node storage n = nodes[node];
        return (n.verifier, n.chosen, n.answered);
    }

    function stake(uint256 amount, bool asVerifier) external {
        bytes32 key = _caller();
        if (amount == 0) revert Refused("invalid_amount", "Cannot stake: amount must be positive");
        token.transferFrom(msg.sender, address(this), amount);
        Node storage n = nodes[key];
        n.staked += amount;
        totalStaked += amount;
        emit WorkerStaked(key, amount, bondedOf(key));
        if (asVerifier && !n.verifier) {
            n.verifier = true;
            verifiers.push(key);
            emit VerifierRegistered(key);
        }
    }

    function requestUnstake(uint256 amount) external {
        bytes32 key = _caller();
        if (amount == 0) revert Refused("invalid_amount", "Cannot unstake: amount must be positive");
        uint256 bonded = bondedOf(key);
        if (amount > bonded) {
            revert Refused("insufficient_stake", "Cannot unstake: the amount exceeds the bonded stake");
        }
        uint256 locked = manager.lockOf(key);
        if (locked > bonded) locked = bonded;
        if (amount > bonded - locked) {
            revert Refused("stake_locked", "Cannot unstake: the stake is locked by open jobs until they are settled");
        }
        if (amount > type(uint128).max) revert Refused("invalid_amount", "Cannot unstake: amount exceeds u128");
        uint64 unlockAtMs = uint64((block.timestamp + unbondingSeconds) * 1000);
        uint64 next = ++seq;
        nodes[key].unbonding += amount;
        requests[key].push(Unbonding(uint128(amount), unlockAtMs, next));
        emit UnstakeRequested(key, amount, unlockAtMs);
    }

    function withdraw() external {
        bytes32 key = _caller();
        Unbonding[] storage list = requests[key];
        if (list.length == 0) revert Refused("invalid_state", "Cannot withdraw stake: nothing is unbonding");
        uint256 nowMs = block.timestamp * 1000;
        uint256 amount = 0;
        uint256 i = 0;
        while (i < list.length) {
            Unbonding storage r = list[i];
            if (r.unlockAtMs <= nowMs) {
                amount += r.amount;
                list[i] = list[list.length - 1];
                list.pop();
            } else {
                i++;
            }
        }
        if (amount == 0) revert Refused("still_unbonding", "Cannot withdraw stake: it is still unbonding");
        Node storage n = nodes[key];
        n.unbonding -= amount;
        n.withdrawn += amount;
        totalWithdrawn += amount;
        token.transfer(n.account, amount);
        emit StakeWithdrawn(key, amount);
    }

    /// @notice The selection weight: stake x reputation x uptime (bps of answered+1 / chosen+1),
    /// 0 below the minimum bond.
    function weightOf(bytes32 node) public view returns (uint256) {
        Node storage n = nodes[node];
        uint256 bonded = n.staked - n.unbonding - n.slashed - n.withdrawn;
        if (!n.verifier || bonded < minVerifierBond) return 0;
        uint256 uptimeBps = (uint256(n.answered) + 1) * 10_000 / (uint256(n.chosen) + 1);
        return bonded * uint256(int256(500 + n.reputationDelta)) * uptimeBps;
    }

    /// @notice Whether at least `need` verifiers could be chosen for a job of `client` (stops
    /// scanning the verifier set once it has found them).
    function hasEligible(bytes32 client, uint256 need) external view returns (bool) {
        uint256 count = 0;
        for (uint256 i = 0; i < verifiers.length && count < need; i++) {
            if (verifiers[i] != client && weightOf(verifiers[i]) > 0) count++;
        }
        return count >= need;
    }

    /// @notice Draws `count` distinct verifiers, each with probability proportional to its weight
    /// among those left, from `seed` alone; never `exclude1` or `exclude2`. Returns fewer only if
    /// fewer have a positive weight. Counts each chosen verifier's `chosen`.
    function choose(bytes32 seed, uint256 count, bytes32 exclude1, bytes32 exclude2)
        external
        onlyManager
        returns (bytes32[] memory chosen)
    {
        uint256 total = verifiers.length;
        bytes32[] memory keys = new bytes32[](total);
        uint256[] memory weights = new uint256[](total);
        uint256 left = 0;
        uint256 sum = 0;
        for (uint256 i = 0; i < total; i++) {
            bytes32 key = verifiers[i];
            if (key == exclude1 || key == exclude2) continue;
            uint256 weight = weightOf(key);
            if (weight == 0) continue;
            keys[left] = key;
            weights[left] = weight;
            sum += weight;
            left++;
        }
        uint256 rounds = count < left ? count : left;
        chosen = new bytes32[](rounds);
        for (uint256 round = 0; round < rounds; round++) {
            uint256 point = uint256(keccak256(abi.encode(seed, round))) % sum;
            uint256 index = 0;
            for (; index < left - 1; index++) {
                if (point < weights[index]) break;
                point -= weights[index];
            }
            chosen[round] = keys[index];
            sum -= weights[index];
            left--;
            keys[index] = keys[left];
            weights[index] = weights[left];
        }
        for (uint256 i = 0; i < rounds; i++) nodes[chosen[i]].chosen++;
    }

    function recordAnswer(bytes32 node) external onlyManager {
        nodes[node].answered++;
    }

    /// @notice Takes `bps` of the stake liable for a job: the bonded stake plus, when `assigned`,
    /// the unbonding requests made after `sinceSeq`, newest first.
    function slash(bytes32 node, uint256 bps, bool assigned, uint64 sinceSeq)
        external
        onlyManager
        returns (uint256 amount)
    {
        Unbonding[] storage list = requests[node];
        uint256 liable = bondedOf(node);
        if (assigned) {
            for (uint256 i = 0; i < list.length; i++) {
                if (list[i].seq > sinceSeq) liable += list[i].amount;
            }
        }
        amount = liable * bps / 10_000;
        uint256 fromUnbonding = 0;
        while (assigned && fromUnbonding < amount) {
            // Newest first: the largest seq after the assignment.
            uint256 best = type(uint256).max;
            uint64 bestSeq = sinceSeq;
            for (uint256 i = 0; i < list.length; i++) {
                if (list[i].seq > bestSeq) {
                    bestSeq = list[i].seq;
                    best = i;
                }
            }
            if (best == type(uint256).max) break;
            Unbonding storage r = list[best];
            uint256 take = amount - fromUnbonding < r.amount ? amount - fromUnbonding : r.amount;
            fromUnbonding += take;
            if (take == r.amount) {
                list[best] = list[list.length - 1];
                list.pop();
            } else {
                r.amount -= uint128(take); // and fromUnbonding == amount: the loop ends
            }
        }
        Node storage n = nodes[node];
        n.unbonding -= fromUnbonding;
        n.slashed += amount;
        totalSlashed += amount;
        if (amount > 0) token.transfer(treasury, amount);
    }

    function adjustReputation(bytes32 node, int16 delta) external onlyManager {
        int16 next = nodes[node].reputationDelta + delta;
        if (next > 500) next = 500;
        if (next < -500) next = -500;
        nodes[node].reputationDelta = next;
        emit ReputationUpdated(node, uint16(int16(500) + next));
    }

    function _caller() private view returns (bytes32 key) {
        key = keyOf[msg.sender];
        if (key == bytes32(0)) revert Refused("not_authorized", "Cannot act: the account has no node id (registerNode)");
    }
}
