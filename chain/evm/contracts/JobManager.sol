// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CiroToken} from "./CiroToken.sol";
import {CdcPool, IStakeLocks} from "./CdcPool.sol";

/// @title JobManager: escrow, assignment, result, verification, payment, refund, slashing.
/// @notice The rules of the settlement port (chain/port.ts), as the local ledger keeps them.
/// Jobs are keyed by `keccak256(bytes(jobId))`, nodes by `keccak256(bytes(nodeId))` (CdcPool).
/// Amounts are token units (18 decimals in test deployments).
contract JobManager is IStakeLocks {
    enum Status { None, Submitted, Assigned, Revoked, Result, Verified, Disputed, Paid, Refunded }

    uint8 internal constant ASSIGNED = 1;
    uint8 internal constant VERIFIER = 2;
    uint8 internal constant REVOKED = 4;
    uint8 internal constant DISPUTED = 8;
    uint8 internal constant SLASHED_BASE = 16; // << reason: 16, 32, 64, 128

    struct Job {
        bytes32 client;
        bytes32 worker;
        uint256 escrow;
        uint256 minStake;
        uint256 price;
        Status status;
    }

    struct Party {
        uint8 flags;
        uint64 assignedSeq;
        uint256 assignedStake;
    }

    CiroToken public immutable token;
    CdcPool public immutable pool;
    address public immutable treasury;
    uint16 public immutable feeBps;

    uint256 public totalEscrowed;
    uint256 public totalPaid;
    uint256 public totalFees;
    uint256 public totalRefunded;
    uint256 public totalLocked;

    mapping(bytes32 => Job) public jobs;
    mapping(bytes32 => mapping(bytes32 => Party)) public parties;
    /// Workers ever assigned to a job, and the open jobs of each worker (for the stake lock).
    mapping(bytes32 => bytes32[]) internal jobWorkers;
    mapping(bytes32 => bytes32[]) internal openJobs;
    mapping(bytes32 => mapping(bytes32 => uint256)) internal openIndex; // worker => job => index + 1

    event JobSubmitted(
        bytes32 indexed job, string jobId, bytes32 client, uint256 amount, bytes32 modelHash, bytes32 inputCommitment
    );
    event WorkerAssigned(bytes32 indexed job, bytes32 worker, uint256 price, string[] verifiers);
    event AssignmentRevoked(bytes32 indexed job, bytes32 worker);
    event ResultSubmitted(bytes32 indexed job, bytes32 worker, bytes32 commitment);
    event JobVerified(bytes32 indexed job);
    event JobDisputed(bytes32 indexed job);
    event PaymentReleased(bytes32 indexed job, bytes32 worker, uint256 amount, uint256 fee, uint256 change);
    event EscrowRefunded(bytes32 indexed job, bytes32 client, uint256 amount, uint8 reason);
    event WorkerSlashed(bytes32 indexed job, bytes32 worker, uint256 amount, uint8 reason);

    error Refused(string code, string reason);

    constructor(CiroToken token_, CdcPool pool_, address treasury_, uint16 feeBps_) {
        token = token_;
        pool = pool_;
        treasury = treasury_;
        feeBps = feeBps_;
    }

    function submitJob(string calldata jobId, uint256 amount, uint256 minStake, bytes32 modelHash, bytes32 inputCommitment)
        external
    {
        bytes32 client = _caller();
        uint256 length = bytes(jobId).length;
        if (length == 0 || length > 128) revert Refused("invalid_amount", "Cannot submit the job: its id must be 1 to 128 bytes");
        if (amount == 0) revert Refused("invalid_amount", "Cannot submit the job: escrow must be a positive u256");
        bytes32 key = keccak256(bytes(jobId));
        Job storage job = jobs[key];
        if (job.status != Status.None) revert Refused("duplicate_job", "Cannot submit the job: a job with this id already exists");
        job.client = client;
        job.escrow = amount;
        job.minStake = minStake;
        job.status = Status.Submitted;
        totalEscrowed += amount;
        totalLocked += amount;
        token.transferFrom(msg.sender, address(this), amount);
        emit JobSubmitted(key, jobId, client, amount, modelHash, inputCommitment);
    }

    function assignWorker(bytes32 key, bytes32 worker, uint256 price, string[] calldata verifiers) external {
        Job storage job = _clientJob(key);
        if (job.status != Status.Submitted && job.status != Status.Revoked) {
            revert Refused("invalid_state", "Cannot assign the job: it is not open");
        }
        uint256 stake = pool.bondedOf(worker);
        if (stake < job.minStake || pool.accountOf(worker) == address(0)) {
            revert Refused("insufficient_stake", "Cannot assign the job: the worker's stake is below the job's minimum");
        }
        if (price > job.escrow) revert Refused("insufficient_balance", "Cannot assign the job: the price exceeds the escrow");
        job.status = Status.Assigned;
        job.worker = worker;
        job.price = price;
        Party storage party = parties[key][worker];
        if (party.flags & ASSIGNED == 0) {
            party.assignedSeq = pool.seq();
            jobWorkers[key].push(worker);
            openJobs[worker].push(key);
            openIndex[worker][key] = openJobs[worker].length;
        }
        party.flags |= ASSIGNED;
        party.assignedStake = stake;
        for (uint256 i = 0; i < verifiers.length; i++) {
            parties[key][keccak256(bytes(verifiers[i]))].flags |= VERIFIER;
        }
        emit WorkerAssigned(key, worker, price, verifiers);
    }

    function revokeAssignment(bytes32 key, bytes32 worker) external {
        Job storage job = _clientJob(key);
        if (job.status != Status.Assigned || job.worker != worker) {
            revert Refused("invalid_state", "Cannot revoke the assignment: the worker is not assigned without a result");
        }
        job.status = Status.Revoked;
        job.worker = bytes32(0);
        job.price = 0;
        parties[key][worker].flags |= REVOKED;
        emit AssignmentRevoked(key, worker);
    }

    function submitResult(bytes32 key, bytes32 commitment) external {
        bytes32 caller = _caller();
        Job storage job = _job(key);
        if (job.worker != caller) revert Refused("not_authorized", "Cannot submit a result: the caller is not the assigned worker");
        if (job.status != Status.Assigned) revert Refused("invalid_state", "Cannot submit a result: a result was already submitted");
        job.status = Status.Result;
        emit ResultSubmitted(key, caller, commitment);
    }

    function recordVerification(bytes32 key, bool accepted) external {
        Job storage job = _clientJob(key);
        if (job.status != Status.Result) revert Refused("invalid_state", "Cannot record the verification: the job has no unverified result");
        if (accepted) {
            job.status = Status.Verified;
            emit JobVerified(key);
        } else {
            job.status = Status.Disputed;
            parties[key][job.worker].flags |= DISPUTED;
            emit JobDisputed(key);
        }
    }

    function releasePayment(bytes32 key) external {
        bytes32 caller = _caller();
        Job storage job = _job(key);
        if (caller != job.client && caller != job.worker) {
            revert Refused("not_authorized", "Cannot release payment: the caller is neither its client nor its worker");
        }
        _requireNotSettled(job);
        if (job.status != Status.Verified) revert Refused("invalid_state", "Cannot release payment: the job is not verified");
        uint256 price = job.price;
        uint256 fee = price * feeBps / 10_000;
        uint256 amount = price - fee;
        uint256 change = job.escrow - price;
        job.status = Status.Paid;
        totalLocked -= job.escrow;
        totalPaid += amount;
        totalFees += fee;
        totalRefunded += change;
        _closeJob(key);
        if (amount > 0) token.transfer(pool.accountOf(job.worker), amount);
        if (fee > 0) token.transfer(treasury, fee);
        if (change > 0) token.transfer(pool.accountOf(job.client), change);
        emit PaymentReleased(key, job.worker, amount, fee, change);
        pool.adjustReputation(job.worker, 10);
    }

    function refund(bytes32 key, uint8 reason) external {
        if (reason > 3) revert Refused("invalid_amount", "Cannot refund: unknown reason");
        Job storage job = _clientJob(key);
        _requireNotSettled(job);
        if (reason == 2 && job.status != Status.Disputed) {
            revert Refused("invalid_state", "Cannot refund as disputed: the job was not disputed");
        }
        job.status = Status.Refunded;
        uint256 escrow = job.escrow;
        totalLocked -= escrow;
        totalRefunded += escrow;
        _closeJob(key);
        token.transfer(pool.accountOf(job.client), escrow);
        emit EscrowRefunded(key, job.client, escrow, reason);
    }

    /// @param reason 0 invalid_compute (50 %), 1 downtime (5 %), 2 double_signing (30 %), 3 coordinated_attack (100 %).
    function slash(bytes32 key, bytes32 worker, uint8 reason) external {
        if (reason > 3) revert Refused("invalid_amount", "Cannot slash: unknown reason");
        _clientJob(key);
        Party storage party = parties[key][worker];
        uint8 flags = party.flags;
        if (reason == 0 && flags & DISPUTED == 0) {
            revert Refused("invalid_state", "Cannot slash: no result of this worker was disputed");
        }
        if (reason == 1 && flags & REVOKED == 0) {
            revert Refused("invalid_state", "Cannot slash: this worker's assignment was not revoked");
        }
        if (flags & (ASSIGNED | VERIFIER) == 0) {
            revert Refused("invalid_state", "Cannot slash: the worker was neither assigned to the job nor one of its verifiers");
        }
        uint8 done = uint8(SLASHED_BASE << reason);
        if (flags & done != 0) revert Refused("invalid_state", "Cannot slash: already slashed for this");
        party.flags = flags | done;
        uint256 bps = reason == 0 ? 5_000 : reason == 1 ? 500 : reason == 2 ? 3_000 : 10_000;
        uint256 amount = pool.slash(worker, bps, flags & ASSIGNED != 0, party.assignedSeq);
        emit WorkerSlashed(key, worker, amount, reason);
        pool.adjustReputation(worker, -100);
    }

    /// @notice The largest stake `node` had when assigned one of its open jobs.
    function lockOf(bytes32 node) external view returns (uint256 locked) {
        bytes32[] storage list = openJobs[node];
        for (uint256 i = 0; i < list.length; i++) {
            uint256 at = parties[list[i]][node].assignedStake;
            if (at > locked) locked = at;
        }
    }

    function openJobsOf(bytes32 node) external view returns (bytes32[] memory) {
        return openJobs[node];
    }

    function _closeJob(bytes32 key) private {
        bytes32[] storage workers = jobWorkers[key];
        for (uint256 i = 0; i < workers.length; i++) {
            bytes32 worker = workers[i];
            bytes32[] storage list = openJobs[worker];
            uint256 index = openIndex[worker][key];
            bytes32 last = list[list.length - 1];
            list[index - 1] = last;
            openIndex[worker][last] = index;
            list.pop();
            delete openIndex[worker][key];
        }
    }

    function _requireNotSettled(Job storage job) private view {
        if (job.status == Status.Paid || job.status == Status.Refunded) {
            revert Refused("invalid_state", "Cannot settle the job: it is already settled");
        }
    }

    function _job(bytes32 key) private view returns (Job storage job) {
        job = jobs[key];
        if (job.status == Status.None) revert Refused("unknown_job", "Cannot act on the job: no such job");
    }

    function _clientJob(bytes32 key) private view returns (Job storage job) {
        bytes32 caller = _caller();
        job = _job(key);
        if (job.client != caller) revert Refused("not_authorized", "Cannot act on the job: the caller is not its client");
    }

    function _caller() private view returns (bytes32 key) {
        key = pool.keyOf(msg.sender);
        if (key == bytes32(0)) revert Refused("not_authorized", "Cannot act: the account has no node id (registerNode)");
    }
}
