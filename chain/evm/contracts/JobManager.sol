// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {CiroToken} from "./CiroToken.sol";
import {CdcPool, IStakeLocks} from "./CdcPool.sol";

/// @title JobManager: escrow, assignment, claims, attestations, deadlines, payment, refund, slashing.
/// @notice The rules of the settlement port (chain/port.ts) as the local ledger keeps them. Jobs
/// are keyed by `keccak256(bytes(jobId))`, nodes by `keccak256(bytes(nodeId))` (CdcPool). Time is
/// `block.timestamp * 1000` (ms); amounts are token units. Attestations are EIP-712 typed data
/// signed by the verifier's account and checked with ecrecover.
contract JobManager is IStakeLocks {
    enum Status { None, Submitted, Assigned, Revoked, Result, Verified, Disputed, Paid, Refunded }
    enum Claim { None, Result, Failure }

    uint16 internal constant ASSIGNED = 1;
    uint16 internal constant VERIFIER = 2;
    uint16 internal constant REVOKED = 4;
    uint16 internal constant DISPUTED = 8;
    uint16 internal constant OVERDUE = 16;
    uint16 internal constant SLASHED_BASE = 32; // << reason: 32, 64, 128, 256

    uint8 internal constant NOT_CHOSEN = 0;
    uint8 internal constant CHOSEN = 1;
    uint8 internal constant VOTED_VALID = 2;
    uint8 internal constant VOTED_INVALID = 3;

    /// The subject of an attestation on a reported failure: keccak256("failed").
    bytes32 public constant FAILURE_SUBJECT = keccak256("failed");
    bytes32 public constant ATTESTATION_TYPEHASH =
        keccak256("Attestation(bytes32 job,uint64 attempt,bytes32 subject,bool valid)");
    uint256 internal constant MAX_VERIFIERS = 64;
    uint256 internal constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    struct Job {
        bytes32 client;
        bytes32 worker;
        bytes32 seed;
        bytes32 commitment;
        /// The spec hash the escrow commits to (zero: none), for `escrowOf`.
        bytes32 specHash;
        uint256 escrow;
        uint256 minStake;
        uint256 price;
        uint64 bidWindowMs;
        uint64 executionMs;
        uint64 verificationMs;
        uint64 bidDeadline;
        uint64 executionDeadline;
        uint64 verificationDeadline;
        uint32 attempt;
        uint8 verifierCount;
        uint8 validVotes;
        uint8 invalidVotes;
        bool chainDecided;
        Status status;
        Claim claim;
    }

    struct Party {
        uint16 flags;
        uint64 assignedSeq;
        uint256 assignedStake;
    }

    struct Attestation {
        bytes32 job;
        bytes32 verifier;
        uint64 attempt;
        bytes32 subject;
        bool valid;
        bytes signature;
    }

    /// `chainDecided` false: a job submitted without terms, under the legacy client-driven rules.
    struct Terms {
        bool chainDecided;
        uint8 verifierCount;
        uint64 bidWindowMs;
        uint64 executionMs;
        uint64 verificationMs;
        /// sha-256 of the job's whole spec (zero: none), emitted in JobSubmitted for verifiers to
        /// check an owner's spec against, and kept for `escrowOf` (no rule of the contract reads it).
        bytes32 specHash;
    }

    CiroToken public immutable token;
    CdcPool public immutable pool;
    address public immutable treasury;
    uint16 public immutable feeBps;
    uint16 public immutable verifierRewardBps;
    bytes32 public immutable DOMAIN_SEPARATOR;

    uint256 public totalEscrowed;
    uint256 public totalPaid;
    uint256 public totalFees;
    uint256 public totalRefunded;
    uint256 public totalLocked;

    mapping(bytes32 => Job) public jobs;
    mapping(bytes32 => mapping(bytes32 => Party)) public parties;
    /// The verifiers the chain chose per job and attempt, and their votes.
    mapping(bytes32 => mapping(uint32 => bytes32[])) internal chosenOf;
    mapping(bytes32 => mapping(uint32 => mapping(bytes32 => uint8))) public votes;
    /// Workers ever assigned to a job, and the open jobs of each worker (for the stake lock).
    mapping(bytes32 => bytes32[]) internal jobWorkers;
    mapping(bytes32 => bytes32[]) internal openJobs;
    mapping(bytes32 => mapping(bytes32 => uint256)) internal openIndex; // worker => job => index + 1

    /// With the escrow's minimum stake and terms, so that a verifier reads them from the chain.
    event JobSubmitted(
        bytes32 indexed job,
        string jobId,
        bytes32 client,
        uint256 amount,
        bytes32 modelHash,
        bytes32 inputCommitment,
        uint256 minStake,
        Terms terms
    );
    /// `verifiers`: the chosen (chain-decided jobs); `named`: those the client named (legacy jobs);
    /// `attempt`: the job's assignments counted from 1 (what an attestation must name).
    event WorkerAssigned(
        bytes32 indexed job, bytes32 worker, uint256 price, bytes32[] verifiers, string[] named, uint32 attempt
    );
    event AssignmentRevoked(bytes32 indexed job, bytes32 worker);
    event ResultSubmitted(bytes32 indexed job, bytes32 worker, bytes32 commitment);
    event FailureReported(bytes32 indexed job, bytes32 worker, string reason);
    event AttestationRecorded(bytes32 indexed job, bytes32 verifier, uint32 attempt, bool valid);
    event JobVerified(bytes32 indexed job);
    event JobDisputed(bytes32 indexed job);
    event PaymentReleased(bytes32 indexed job, bytes32 worker, uint256 amount, uint256 fee, uint256 change);
    event EscrowRefunded(bytes32 indexed job, bytes32 client, uint256 amount, uint8 reason);
    event WorkerSlashed(bytes32 indexed job, bytes32 worker, uint256 amount, uint8 reason);

    error Refused(string code, string reason);

    constructor(CiroToken token_, CdcPool pool_, address treasury_, uint16 feeBps_, uint16 verifierRewardBps_) {
        token = token_;
        pool = pool_;
        treasury = treasury_;
        feeBps = feeBps_;
        verifierRewardBps = verifierRewardBps_;
        DOMAIN_SEPARATOR = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("CIRO JobManager"),
                keccak256("1"),
                block.chainid,
                address(this)
            )
        );
    }

    function submitJob(
        string calldata jobId,
        uint256 amount,
        uint256 minStake,
        bytes32 modelHash,
        bytes32 inputCommitment,
        Terms calldata terms
    ) external {
        bytes32 client = _caller();
        uint256 length = bytes(jobId).length;
        if (length == 0 || length > 512) _refuse("invalid_amount", "Cannot submit the job: its id must be 1 to 512 bytes");
        if (amount == 0) _refuse("invalid_amount", "Cannot submit the job: escrow must be a positive u256");
        if (terms.verifierCount > MAX_VERIFIERS || terms.bidWindowMs == 0 || terms.executionMs == 0
            || terms.verificationMs == 0) {
            _refuse("invalid_amount", "Cannot submit the job: its terms are out of range");
        }
        bytes32 key = keccak256(bytes(jobId));
        Job storage job = jobs[key];
        if (job.status != Status.None) _refuse("duplicate_job", "Cannot submit the job: a job with this id already exists");
        if (terms.verifierCount > 0 && !pool.hasEligible(client, terms.verifierCount)) {
            _refuse("not_enough_verifiers", "Cannot submit the job: fewer verifiers are bonded than it asks for");
        }
        job.client = client;
        job.escrow = amount;
        job.minStake = minStake;
        job.seed = keccak256(abi.encode(blockhash(block.number - 1), key));
        job.verifierCount = terms.verifierCount;
        job.chainDecided = terms.chainDecided;
        job.bidWindowMs = terms.bidWindowMs;
        job.executionMs = terms.executionMs;
        job.verificationMs = terms.verificationMs;
        if (terms.specHash != bytes32(0)) job.specHash = terms.specHash;
        job.bidDeadline = _now() + terms.bidWindowMs;
        job.status = Status.Submitted;
        totalEscrowed += amount;
        totalLocked += amount;
        token.transferFrom(msg.sender, address(this), amount);
        emit JobSubmitted(key, jobId, client, amount, modelHash, inputCommitment, minStake, terms);
    }

    /// @notice The client assigns its job; the chain chooses the verifiers (a legacy job's client
    /// names them in `named`).
    function assignWorker(bytes32 key, bytes32 worker, uint256 price, string[] calldata named) external {
        Job storage job = _clientJob(key);
        if (job.status != Status.Submitted && job.status != Status.Revoked) {
            _refuse("invalid_state", "Cannot assign the job: it is not open");
        }
        uint256 stake = pool.bondedOf(worker);
        if (stake < job.minStake || pool.accountOf(worker) == address(0)) {
            _refuse("insufficient_stake", "Cannot assign the job: the worker's stake is below the job's minimum");
        }
        if (price > job.escrow) _refuse("insufficient_balance", "Cannot assign the job: the price exceeds the escrow");
        if (job.chainDecided && named.length > 0) {
            _refuse("not_authorized", "Cannot assign the job: the chain chooses its verifiers");
        }
        uint32 attempt = job.attempt + 1;
        bytes32[] memory chosen;
        if (job.verifierCount > 0) {
            chosen = pool.choose(keccak256(abi.encode(job.seed, attempt)), job.verifierCount, job.client, worker);
            if (chosen.length < job.verifierCount) {
                _refuse("not_enough_verifiers", "Cannot assign the job: fewer verifiers are bonded than it needs");
            }
        }
        job.status = Status.Assigned;
        job.worker = worker;
        job.price = price;
        job.attempt = attempt;
        job.executionDeadline = _now() + job.executionMs;
        job.claim = Claim.None;
        job.validVotes = 0;
        job.invalidVotes = 0;
        Party storage party = parties[key][worker];
        if (party.flags & ASSIGNED == 0) {
            party.assignedSeq = pool.seq();
            jobWorkers[key].push(worker);
            openJobs[worker].push(key);
            openIndex[worker][key] = openJobs[worker].length;
        }
        party.flags |= ASSIGNED;
        party.assignedStake = stake;
        for (uint256 i = 0; i < chosen.length; i++) {
            parties[key][chosen[i]].flags |= VERIFIER;
            votes[key][attempt][chosen[i]] = CHOSEN;
            chosenOf[key][attempt].push(chosen[i]);
        }
        for (uint256 i = 0; i < named.length; i++) {
            parties[key][keccak256(bytes(named[i]))].flags |= VERIFIER;
        }
        emit WorkerAssigned(key, worker, price, chosen, named, attempt);
    }

    function revokeAssignment(bytes32 key, bytes32 worker) external {
        bytes32 caller = _caller();
        Job storage job = _job(key);
        if (job.status != Status.Assigned || job.worker != worker) {
            _refuse("invalid_state", "Cannot revoke the assignment: the worker is not assigned without a result");
        }
        // Before the execution deadline only the client; after it anyone, and the worker is overdue.
        bool overdue = job.chainDecided && _now() >= job.executionDeadline;
        if (!overdue && caller != job.client) _refuse("not_authorized", "Cannot act on the job: the caller is not its client");
        job.status = Status.Revoked;
        job.worker = bytes32(0);
        job.price = 0;
        job.bidDeadline = _now() + job.bidWindowMs;
        parties[key][worker].flags |= overdue ? REVOKED | OVERDUE : REVOKED;
        emit AssignmentRevoked(key, worker);
    }

    function submitResult(bytes32 key, bytes32 commitment) external {
        Job storage job = _workerClaim(key);
        job.commitment = commitment;
        emit ResultSubmitted(key, job.worker, commitment);
        if (job.chainDecided) _openClaim(key, job, Claim.Result);
    }

    function reportFailure(bytes32 key, string calldata reason) external {
        uint256 length = bytes(reason).length;
        if (length == 0 || length > 800) _refuse("invalid_amount", "Cannot report a failure: the reason must be 1 to 800 bytes");
        Job storage job = _workerClaim(key);
        if (!job.chainDecided) _refuse("invalid_state", "Cannot report a failure: the job is under the legacy rules (submitted without terms)");
        emit FailureReported(key, job.worker, reason);
        _openClaim(key, job, Claim.Failure);
    }

    /// @notice Counts signed attestations (anyone may relay them); decides at 2f+1 valid or f+1
    /// invalid of the n chosen, and slashes the chosen who attested against the outcome.
    function submitAttestations(Attestation[] calldata batch) external {
        if (batch.length == 0 || batch.length > MAX_VERIFIERS) _refuse("invalid_amount", "Cannot count attestations: expected 1 to 64");
        for (uint256 i = 0; i < batch.length; i++) _record(batch[i]);
    }

    /// @notice Evidence of double signing: two conflicting statements by one chosen key for one attempt.
    function reportDoubleSigning(Attestation calldata first, Attestation calldata second) external {
        if (first.verifier != second.verifier || first.job != second.job || first.attempt != second.attempt) {
            _refuse("no_evidence", "Cannot take the evidence: the statements are not by one key for one attempt of one job");
        }
        if (first.subject == second.subject && first.valid == second.valid) {
            _refuse("no_evidence", "Cannot take the evidence: the statements do not conflict");
        }
        _job(first.job);
        if (first.attempt > type(uint32).max || votes[first.job][uint32(first.attempt)][first.verifier] == NOT_CHOSEN) {
            _refuse("not_chosen", "Cannot take the evidence: it was not chosen for that attempt");
        }
        address signer = pool.signerOf(first.verifier);
        if (signer == address(0)) _refuse("no_key", "Cannot take the evidence: it has registered no key");
        if (_signer(first) != signer || _signer(second) != signer) {
            _refuse("bad_signature", "Cannot take the evidence: a signature does not verify");
        }
        _slashStake(first.job, first.verifier, 2, false);
    }

    /// @notice Legacy jobs only: the client's verdict on the result.
    function recordVerification(bytes32 key, bool accepted) external {
        Job storage job = _job(key);
        if (job.chainDecided) _refuse("not_authorized", "Cannot record the verification: the chain counts its verifiers' attestations");
        if (job.client != _caller()) _refuse("not_authorized", "Cannot act on the job: the caller is not its client");
        if (job.status != Status.Result) _refuse("invalid_state", "Cannot record the verification: the job has no unverified result");
        if (accepted) {
            job.status = Status.Verified;
            emit JobVerified(key);
        } else {
            job.status = Status.Disputed;
            parties[key][job.worker].flags |= DISPUTED;
            emit JobDisputed(key);
        }
    }

    /// @notice Anyone may release a verified result's payment (a legacy job: its client or worker).
    function releasePayment(bytes32 key) external {
        bytes32 caller = _caller();
        Job storage job = _job(key);
        if (!job.chainDecided && caller != job.client && caller != job.worker) {
            _refuse("not_authorized", "Cannot release payment: the caller is neither its client nor its worker");
        }
        _requireNotSettled(job);
        if (job.status != Status.Verified || (job.chainDecided && job.claim != Claim.Result)) {
            _refuse("invalid_state", "Cannot release payment: the job has no verified result");
        }
        uint256 price = job.price;
        uint256 fee = price * feeBps / 10_000;
        uint256 rewarded = _payVerifiers(key, job, price);
        uint256 amount = price - fee - rewarded;
        uint256 change = job.escrow - price;
        job.status = Status.Paid;
        totalLocked -= job.escrow;
        totalPaid += amount + rewarded;
        totalFees += fee;
        totalRefunded += change;
        _closeJob(key);
        if (amount > 0) token.transfer(pool.accountOf(job.worker), amount);
        if (fee > 0) token.transfer(treasury, fee);
        if (change > 0) token.transfer(pool.accountOf(job.client), change);
        emit PaymentReleased(key, job.worker, amount, fee, change);
        pool.adjustReputation(job.worker, 10);
    }

    /// @param reason 0 expired, 1 cancelled, 2 disputed, 3 failed.
    function refund(bytes32 key, uint8 reason) external {
        if (reason > 3) _refuse("invalid_amount", "Cannot refund: unknown reason");
        bytes32 caller = _caller();
        Job storage job = _job(key);
        _requireNotSettled(job);
        _checkRefund(job, caller, reason);
        if (job.chainDecided && job.status == Status.Assigned) parties[key][job.worker].flags |= OVERDUE;
        uint256 rewarded = job.status == Status.Verified && job.claim == Claim.Failure ? _payVerifiers(key, job, job.price) : 0;
        uint256 escrow = job.escrow;
        uint256 amount = escrow - rewarded;
        job.status = Status.Refunded;
        totalLocked -= escrow;
        totalPaid += rewarded;
        totalRefunded += amount;
        _closeJob(key);
        token.transfer(pool.accountOf(job.client), amount);
        emit EscrowRefunded(key, job.client, amount, reason);
    }

    /// @notice Anyone may ask; the chain slashes only for what it established itself.
    /// @param reason 0 invalid_compute (50 %), 1 downtime (5 %), 2 double_signing, 3 coordinated_attack.
    function slash(bytes32 key, bytes32 worker, uint8 reason) external {
        if (reason > 3) _refuse("invalid_amount", "Cannot slash: unknown reason");
        bytes32 caller = _caller();
        Job storage job = _job(key);
        uint16 flags = parties[key][worker].flags;
        if (!job.chainDecided) {
            // The legacy rules: the client's word, for jobs submitted without terms.
            if (caller != job.client) _refuse("not_authorized", "Cannot act on the job: the caller is not its client");
            if (reason == 0 && flags & DISPUTED == 0) _refuse("invalid_state", "Cannot slash: no result of this worker was disputed");
            if (reason == 1 && flags & REVOKED == 0) _refuse("invalid_state", "Cannot slash: this worker's assignment was not revoked");
            _slashStake(key, worker, reason, true);
            return;
        }
        if (reason >= 2) {
            _refuse("no_evidence", reason == 2
                ? "Cannot slash: double signing is proven with two signed statements (reportDoubleSigning)"
                : "Cannot slash: the chain cannot establish a coordinated attack");
        }
        if (reason == 0 && flags & DISPUTED == 0) _refuse("invalid_state", "Cannot slash: no result of this worker was disputed");
        if (reason == 1 && flags & OVERDUE == 0) {
            _refuse("invalid_state", "Cannot slash: this worker did not let the job's execution deadline pass");
        }
        _slashStake(key, worker, reason, true);
    }

    /// @notice The largest stake `node` had when assigned one of its open jobs.
    function lockOf(bytes32 node) external view returns (uint256 locked) {
        bytes32[] storage list = openJobs[node];
        for (uint256 i = 0; i < list.length; i++) {
            uint256 at = parties[list[i]][node].assignedStake;
            if (at > locked) locked = at;
        }
    }

    /// @notice A job's escrow as the chain holds it: its client's node key, the spec hash it
    /// commits to (zero: none) and its status (`None`: no such job). What a node reads of a job it
    /// takes part in, instead of every job's `JobSubmitted` (chain/port.ts, `escrowOf`).
    function escrowOf(bytes32 key) external view returns (bytes32 client, bytes32 specHash, Status status) {
        Job storage job = jobs[key];
        return (job.client, job.specHash, job.status);
    }

    function chosenVerifiers(bytes32 key, uint32 attempt) external view returns (bytes32[] memory) {
        return chosenOf[key][attempt];
    }

    /// @notice The EIP-712 digest a verifier signs.
    function attestationDigest(bytes32 job, uint64 attempt, bytes32 subject, bool valid) public view returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                "\x19\x01", DOMAIN_SEPARATOR, keccak256(abi.encode(ATTESTATION_TYPEHASH, job, attempt, subject, valid))
            )
        );
    }

    // ------------------------------------------------------------------------------------------

    function _record(Attestation calldata a) private {
        Job storage job = _job(a.job);
        if (a.attempt != job.attempt) _refuse("wrong_attempt", "Cannot count the attestation: it is for another attempt");
        uint32 attempt = job.attempt;
        uint8 vote = votes[a.job][attempt][a.verifier];
        if (vote == NOT_CHOSEN) _refuse("not_chosen", "Cannot count the attestation: the chain did not choose it for this attempt");
        address signer = pool.signerOf(a.verifier);
        if (signer == address(0)) _refuse("no_key", "Cannot count the attestation: the verifier has registered no key");
        if (_signer(a) != signer) _refuse("bad_signature", "Cannot count the attestation: the signature does not verify");
        if (vote != CHOSEN) _refuse("duplicate_attestation", "Cannot count the attestation: it attested already");
        if (job.status != Status.Result) {
            _refuse("invalid_state", "Cannot count the attestation: the job has no claim waiting for verification");
        }
        bytes32 subject = job.claim == Claim.Failure ? FAILURE_SUBJECT : job.commitment;
        if (a.subject != subject) _refuse("wrong_subject", "Cannot count the attestation: it judges another claim");
        if (_now() >= job.verificationDeadline) _refuse("deadline_passed", "Cannot count the attestation: the verification deadline has passed");
        votes[a.job][attempt][a.verifier] = a.valid ? VOTED_VALID : VOTED_INVALID;
        pool.recordAnswer(a.verifier);
        emit AttestationRecorded(a.job, a.verifier, attempt, a.valid);
        uint256 n = job.verifierCount;
        uint256 f = (n - 1) / 3;
        if (a.valid) job.validVotes++;
        else job.invalidVotes++;
        uint8 decided;
        if (job.validVotes >= 2 * f + 1) {
            job.status = Status.Verified;
            emit JobVerified(a.job);
            decided = VOTED_VALID;
        } else if (job.invalidVotes >= f + 1) {
            job.status = Status.Disputed;
            parties[a.job][job.worker].flags |= DISPUTED;
            emit JobDisputed(a.job);
            decided = VOTED_INVALID;
        } else {
            return;
        }
        // Verifiers who attested against the decided outcome are slashed like invalid compute.
        bytes32[] storage chosen = chosenOf[a.job][attempt];
        for (uint256 i = 0; i < chosen.length; i++) {
            uint8 v = votes[a.job][attempt][chosen[i]];
            if (v != CHOSEN && v != decided) _slashStake(a.job, chosen[i], 0, false);
        }
    }

    function _signer(Attestation calldata a) private view returns (address) {
        if (a.signature.length != 65) return address(0);
        bytes32 r = bytes32(a.signature[0:32]);
        bytes32 s = bytes32(a.signature[32:64]);
        uint8 v = uint8(a.signature[64]);
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) return address(0);
        return ecrecover(attestationDigest(a.job, a.attempt, a.subject, a.valid), v, r, s);
    }

    function _payVerifiers(bytes32 key, Job storage job, uint256 base) private returns (uint256) {
        bytes32[] storage chosen = chosenOf[key][job.attempt];
        uint256 agreed = 0;
        for (uint256 i = 0; i < chosen.length; i++) {
            if (votes[key][job.attempt][chosen[i]] == VOTED_VALID) agreed++;
        }
        if (agreed == 0) return 0;
        uint256 each = base * verifierRewardBps / 10_000 / agreed;
        if (each > 0) {
            for (uint256 i = 0; i < chosen.length; i++) {
                if (votes[key][job.attempt][chosen[i]] == VOTED_VALID) token.transfer(pool.accountOf(chosen[i]), each);
            }
        }
        return each * agreed;
    }

    function _checkRefund(Job storage job, bytes32 caller, uint8 reason) private view {
        bool isClient = caller == job.client;
        if (!job.chainDecided) {
            if (!isClient) _refuse("not_authorized", "Cannot refund: the caller is not its client");
            if (reason == 2 && job.status != Status.Disputed) _refuse("invalid_state", "Cannot refund as disputed: the job was not disputed");
            return;
        }
        bool open = job.status == Status.Submitted || job.status == Status.Revoked;
        uint64 nowMs = _now();
        if (reason == 1) {
            if (!isClient) _refuse("not_authorized", "Cannot refund as cancelled: the caller is not its client");
            if (!open) _refuse("invalid_state", "Cannot refund as cancelled: the job is not open");
        } else if (reason == 0) {
            if (!open) _refuse("invalid_state", "Cannot refund as expired: the job is not open");
            if (!isClient && nowMs < job.bidDeadline) _refuse("deadline_not_passed", "Cannot refund as expired: its bid deadline has not passed");
        } else if (reason == 2) {
            if (job.status != Status.Disputed) _refuse("invalid_state", "Cannot refund as disputed: the job was not disputed");
        } else if (open) {
            if (!isClient && nowMs < job.bidDeadline) _refuse("deadline_not_passed", "Cannot refund as failed: its bid deadline has not passed");
        } else if (!(job.status == Status.Verified && job.claim == Claim.Failure)) {
            uint64 deadline;
            if (job.status == Status.Assigned) deadline = job.executionDeadline;
            else if (job.status == Status.Result) deadline = job.verificationDeadline;
            else _refuse("invalid_state", "Cannot refund as failed: the job is neither open, late nor a verified failure");
            if (nowMs < deadline) _refuse("deadline_not_passed", "Cannot refund as failed: its deadline has not passed");
        }
    }

    function _slashStake(bytes32 key, bytes32 worker, uint8 reason, bool refuseRepeat) private {
        Party storage party = parties[key][worker];
        uint16 flags = party.flags;
        if (flags & (ASSIGNED | VERIFIER) == 0) {
            _refuse("invalid_state", "Cannot slash: the worker was neither assigned to the job nor one of its verifiers");
        }
        uint16 done = uint16(SLASHED_BASE << reason);
        if (flags & done != 0) {
            if (!refuseRepeat) return;
            _refuse("invalid_state", "Cannot slash: already slashed for this");
        }
        party.flags = flags | done;
        uint256 bps = reason == 0 ? 5_000 : reason == 1 ? 500 : reason == 2 ? 3_000 : 10_000;
        uint256 amount = pool.slash(worker, bps, flags & ASSIGNED != 0, party.assignedSeq);
        emit WorkerSlashed(key, worker, amount, reason);
        pool.adjustReputation(worker, -100);
    }

    function _workerClaim(bytes32 key) private returns (Job storage job) {
        bytes32 caller = _caller();
        job = _job(key);
        if (job.worker != caller) _refuse("not_authorized", "Cannot claim: the caller is not the assigned worker");
        if (job.status != Status.Assigned) _refuse("invalid_state", "Cannot claim: a result or failure was already submitted");
        if (job.chainDecided && _now() >= job.executionDeadline) _refuse("deadline_passed", "Cannot claim: the execution deadline has passed");
        job.status = Status.Result;
    }

    /// A claim is on chain: verified at once for a job without verifiers, else counted.
    function _openClaim(bytes32 key, Job storage job, Claim claim) private {
        job.claim = claim;
        job.verificationDeadline = _now() + job.verificationMs;
        if (job.verifierCount == 0) {
            job.status = Status.Verified;
            emit JobVerified(key);
        }
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

    function _now() private view returns (uint64) {
        return uint64(block.timestamp * 1000);
    }

    function _requireNotSettled(Job storage job) private view {
        if (job.status == Status.Paid || job.status == Status.Refunded) {
            _refuse("invalid_state", "Cannot settle the job: it is already settled");
        }
    }

    function _job(bytes32 key) private view returns (Job storage job) {
        job = jobs[key];
        if (job.status == Status.None) _refuse("unknown_job", "Cannot act on the job: no such job");
    }

    function _clientJob(bytes32 key) private view returns (Job storage job) {
        bytes32 caller = _caller();
        job = _job(key);
        if (job.client != caller) _refuse("not_authorized", "Cannot act on the job: the caller is not its client");
    }

    function _caller() private view returns (bytes32 key) {
        key = pool.keyOf(msg.sender);
        if (key == bytes32(0)) _refuse("not_authorized", "Cannot act: the account has no node id (registerNode)");
    }

    function _refuse(string memory code, string memory reason) private pure {
        revert Refused(code, reason);
    }
}
