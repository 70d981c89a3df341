"""Is live traffic still what the model was trained on? A baseline of training-prompt
embeddings, and four tests of a window of live prompts against it.

- a classifier two-sample test: can a classifier tell training prompts from live ones? Its
  cross-validated AUC is compared with the AUCs it gets when the labels are shuffled;
- MMD (RBF kernel, median-distance bandwidth) with a permutation p-value;
- the shares of the baseline's k-means clusters: a chi-square test on the live counts, PSI as
  the size of the move;
- out-of-coverage: live prompts farther from every training prompt than 99% of the training
  prompts of their cluster are from their nearest neighbour (a radius per cluster: topics
  differ in spread); under no drift about 1% are, so a binomial test says whether more are.
  The retraining signal: questions nothing trained resembles.

Each test alerts at p < 0.0025, so the four together raise about 1% false alarms.

Embeddings are L2-normalised (MiniLM's are); distances are Euclidean on them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneline._optional import require

COVERAGE_QUANTILE = 0.99
SAME_PROMPT_DISTANCE = 1e-3  # unit-length embeddings this close are one prompt embedded twice


@dataclass(frozen=True)
class DriftThresholds:
    """When a test raises the alert (each alone; all four hold at about 1% false alarms)."""

    p_value: float = 0.0025  # per test (MMD, cluster shares, out-of-coverage): 1% for all four
    min_auc: float = 0.7  # the classifier must beat every shuffled run and reach this AUC
    psi: float = 0.1  # a significant move of the cluster shares must also be this large
    permutations: int = 400  # MMD permutations (p-values down to 1/401)
    shuffles: int = 20  # label-shuffled classifier runs (the AUC's null)
    baseline_per_live: int = 4  # MMD compares the window with 4x as many training prompts


@dataclass(frozen=True)
class DriftBaseline:
    """What a version was trained on, kept with it: a sample of its prompts' embeddings, their
    clusters and shares, the coverage radius, and the eval-time rates live ones are held to."""

    embeddings: Any  # (n, d) float32, L2-normalised
    centroids: Any  # (k, d)
    shares: Any  # (k,) share of the sample in each cluster
    # (k + 1,): each cluster's median nearest-neighbour distance, then the COVERAGE_QUANTILE
    # of all training prompts' nearest-neighbour distances relative to their cluster's median
    coverage_radius: Any
    rates: dict[str, float] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        np = require("numpy")
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "baseline.npz", embeddings=self.embeddings,
                            centroids=self.centroids, shares=self.shares,
                            coverage_radius=self.coverage_radius)
        (folder / "baseline.json").write_text(json.dumps({"rates": self.rates}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> DriftBaseline:
        np = require("numpy")
        arrays = np.load(folder / "baseline.npz")
        meta = json.loads((folder / "baseline.json").read_text())
        return cls(arrays["embeddings"], arrays["centroids"], arrays["shares"],
                   arrays["coverage_radius"], dict(meta.get("rates", {})))


@dataclass(frozen=True)
class DriftReport:
    """One window of live prompts against the baseline."""

    live: int
    classifier_auc: float
    classifier_auc_null: float  # the highest AUC of the label-shuffled runs
    mmd: float
    mmd_p_value: float
    psi: float
    shares_p_value: float  # chi-square test of the live cluster counts
    cluster_shares: dict[str, list[float]]  # baseline and live share per cluster
    out_of_coverage: float  # share of live prompts outside the training prompts' coverage
    out_of_coverage_p_value: float
    alerts: list[str]
    # Per live prompt, for the HTML report (not in drift.json): its nearest cluster, and its
    # distance to the nearest training prompt over the coverage radius (> 1: out of coverage).
    live_clusters: list[int] = field(default_factory=list)
    coverage_ratio: list[float] = field(default_factory=list)

    @property
    def alert(self) -> bool:
        return bool(self.alerts)

    def to_dict(self) -> dict[str, Any]:
        summary = {k: v for k, v in asdict(self).items()
                   if k not in ("live_clusters", "coverage_ratio")}
        return {**summary, "alert": self.alert}


def build_baseline(embeddings: Any, rates: dict[str, float] | None = None, clusters: int = 8,
                   sample: int = 2000, seed: int = 0) -> DriftBaseline:
    """The baseline of `embeddings` (training prompts), sampled down to `sample` rows."""
    np = require("numpy")
    cluster = require("sklearn.cluster")
    rng = np.random.default_rng(seed)
    x = _normalised(np.asarray(embeddings, dtype=np.float32))
    if len(x) > sample:
        x = x[rng.choice(len(x), sample, replace=False)]
    k = max(1, min(clusters, len(x) // 10))
    kmeans = cluster.KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    shares = np.bincount(kmeans.labels_, minlength=k) / len(x)
    return DriftBaseline(x, kmeans.cluster_centers_.astype(np.float32), shares,
                         _coverage_radii(x, kmeans.labels_, k), dict(rates or {}))


def compare(baseline: DriftBaseline, live: Any, thresholds: DriftThresholds | None = None,
            seed: int = 0) -> DriftReport:
    """Test a window of live prompt embeddings against the baseline."""
    np = require("numpy")
    stats = require("scipy.stats")
    t = thresholds or DriftThresholds()
    rng = np.random.default_rng(seed)
    y = _normalised(np.asarray(live, dtype=np.float32))
    x = baseline.embeddings
    auc, auc_null = _classifier_test(x, y, t.shuffles, rng)
    sample = x[rng.choice(len(x), min(len(x), t.baseline_per_live * len(y)), replace=False)]
    mmd, mmd_p = _mmd_test(sample, y, t.permutations, rng)
    cluster = _pairwise(y, baseline.centroids).argmin(axis=1)
    counts = np.bincount(cluster, minlength=len(baseline.centroids))
    live_shares = counts / len(y)
    psi = _psi(baseline.shares, live_shares)
    expected = np.maximum(baseline.shares, 1e-9)
    shares_p = float(stats.chisquare(counts, expected / expected.sum() * len(y)).pvalue)
    scale, radius = baseline.coverage_radius[:-1], baseline.coverage_radius[-1]
    ratio = _nearest_distance(y, x) / scale[cluster] / radius
    outside = int((ratio > 1).sum())
    ooc_p = float(stats.binomtest(outside, len(y), 1 - COVERAGE_QUANTILE,
                                  alternative="greater").pvalue)
    alerts = []
    if auc > max(auc_null, t.min_auc):
        alerts.append(f"a classifier tells live prompts from training ones (AUC {auc:.2f}, "
                      f"shuffled labels reach {auc_null:.2f})")
    if mmd_p < t.p_value:
        alerts.append(f"MMD {mmd:.4f}, permutation p = {mmd_p:.4f}")
    if shares_p < t.p_value and psi > t.psi:
        alerts.append(f"the topics asked about moved: PSI {psi:.2f}, chi-square p = "
                      f"{shares_p:.2g}")
    if ooc_p < t.p_value:
        alerts.append(f"{outside / len(y):.0%} of live prompts resemble no training prompt "
                      f"(about {1 - COVERAGE_QUANTILE:.0%} expected; p = {ooc_p:.2g})")
    return DriftReport(len(y), auc, auc_null, mmd, mmd_p, psi, shares_p,
                       {"baseline": [round(float(s), 4) for s in baseline.shares],
                        "live": [round(float(s), 4) for s in live_shares]},
                       outside / len(y), ooc_p, alerts, [int(c) for c in cluster],
                       [round(float(r), 4) for r in ratio])


def _normalised(x: Any) -> Any:
    np = require("numpy")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _pairwise(a: Any, b: Any) -> Any:
    np = require("numpy")
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _nearest_distance(y: Any, x: Any) -> Any:
    return _pairwise(y, x).min(axis=1)


def _coverage_radii(x: Any, labels: Any, k: int) -> Any:
    """Each cluster's median distance from a training prompt to its nearest other one (topics
    differ in spread), and the COVERAGE_QUANTILE of those distances relative to their
    cluster's median, over all training prompts (one quantile from many points is stable).
    A copy of the same prompt (a question trained plainly and again with passages) is not
    another one: its distance of ~0 would make a cluster's median 0."""
    np = require("numpy")
    x = x.astype(np.float64)  # float32's rounding puts a prompt ~1e-3 from itself
    d = _pairwise(x, x)
    np.fill_diagonal(d, np.inf)
    d[d < SAME_PROMPT_DISTANCE] = np.inf
    nearest = d.min(axis=1)
    if not np.isfinite(nearest).any():  # every prompt the same: no spread to measure
        nearest = np.zeros(len(x))
    nearest = np.where(np.isfinite(nearest), nearest, np.nan)
    overall = float(np.nanmedian(nearest)) or 1.0
    scale = np.array([_median_or(nearest[labels == c], overall) for c in range(k)])
    relative = nearest / scale[labels]
    # at least a cluster's own spread: 0 when every prompt is one (nothing to measure)
    return np.r_[scale, max(1.0, float(np.nanquantile(relative, COVERAGE_QUANTILE)))]


def _median_or(distances: Any, fallback: float) -> float:
    """The median of a cluster's distances when it has enough distinct prompts to say."""
    np = require("numpy")
    distinct = distances[~np.isnan(distances)]
    median = float(np.median(distinct)) if len(distinct) >= 5 else 0.0
    return median or fallback


def _classifier_test(x: Any, y: Any, shuffles: int, rng: Any) -> tuple[float, float]:
    """Cross-validated AUC of a ridge classifier telling training from live prompts, and the
    highest AUC it reaches with shuffled labels. The baseline is subsampled to the window's
    size so the classes are balanced; the ridge fits are closed-form (cheap to repeat)."""
    np = require("numpy")
    x = x[rng.choice(len(x), min(len(x), len(y)), replace=False)]
    features = np.vstack([x, y]).astype(np.float64)
    labels = np.r_[np.zeros(len(x)), np.ones(len(y))]
    folds = np.array_split(rng.permutation(len(labels)), max(2, min(5, len(y) // 5)))
    null = [_cv_auc(features, rng.permutation(labels), folds) for _ in range(shuffles)]
    return _cv_auc(features, labels, folds), float(max(null))


def _cv_auc(features: Any, labels: Any, folds: list[Any], ridge: float = 1.0) -> float:
    """Mean AUC over the folds of a ridge regression on the ±1 labels."""
    np = require("numpy")
    stats = require("scipy.stats")
    aucs = []
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        mean = features[train].mean(axis=0)
        a, target = features[train] - mean, 2 * labels[train] - 1
        w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ (target - target.mean()))
        scores, truth = (features[test] - mean) @ w, labels[test]
        positives, negatives = int(truth.sum()), int(len(truth) - truth.sum())
        if positives and negatives:
            ranks = stats.rankdata(scores)
            aucs.append((ranks[truth == 1].sum() - positives * (positives + 1) / 2)
                        / (positives * negatives))
    return float(np.mean(aucs)) if aucs else 0.5


def _mmd_test(x: Any, y: Any, permutations: int, rng: Any) -> tuple[float, float]:
    """Unbiased MMD² with an RBF kernel (bandwidth: the median pairwise distance) and its
    permutation p-value."""
    np = require("numpy")
    z = np.vstack([x, y])
    d = _pairwise(z, z)
    bandwidth = float(np.median(d[np.triu_indices(len(z), 1)])) or 1.0
    kernel = np.exp(-(d ** 2) / (2 * bandwidth ** 2))
    n = len(x)

    def mmd(order: Any) -> float:
        k = kernel[np.ix_(order, order)]
        kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
        m = len(z) - n
        return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
                     + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())

    observed = mmd(np.arange(len(z)))
    null = [mmd(rng.permutation(len(z))) for _ in range(permutations)]
    return observed, (1 + sum(v >= observed for v in null)) / (1 + permutations)


def _psi(expected: Any, actual: Any, floor: float = 1e-3) -> float:
    np = require("numpy")
    e, a = np.maximum(expected, floor), np.maximum(actual, floor)
    return float(((a - e) * np.log(a / e)).sum())


@dataclass(frozen=True)
class RateCheck:
    """A live share (declined answers, questions without a passage) against the version's."""

    name: str
    live: float
    expected: float
    n: int
    p_value: float
    alert: bool


def compare_rates(expected: dict[str, float], counts: dict[str, tuple[int, int]],
                  p_value: float = DriftThresholds().p_value) -> list[RateCheck]:
    """Binomial test of each live (hits, n) against the baseline's rate of the same name; a
    rate the baseline lacks, or with no live requests, is not tested."""
    stats = require("scipy.stats")
    checks = []
    for name, (hits, n) in counts.items():
        if name not in expected or n == 0:
            continue
        rate = min(max(expected[name], 1e-3), 1 - 1e-3)  # a 0% baseline still admits noise
        p = float(stats.binomtest(hits, n, rate).pvalue)
        checks.append(RateCheck(name, hits / n, expected[name], n, p, p < p_value))
    return checks


def alerts_of(report: DriftReport, rates: list[RateCheck]) -> list[str]:
    """Every alert in words: the question tests', then each live rate that moved."""
    return report.alerts + [
        f"{r.name.replace('_', ' ')}: {r.live:.0%} of {r.n} live requests against "
        f"{r.expected:.0%} at evaluation (binomial p = {r.p_value:.2g})" for r in rates if r.alert]
