"""Link profiles: the delays every message between two lab nodes takes,
set through the nodes' failpoints (docs/failpoints.md). A profile gives,
for each ordered pair of nodes, the delay distribution of rpc.send on the
sender for that peer (a one-way link delay: requests and replies alike),
and optionally a store.write delay (the time a replica takes to apply).

The machines this runs on have no netem; these rules are the network."""

NODES = ["n1", "n2", "n3", "n4", "n5"]


class Profile:
    def __init__(self, name, about, link, store_write=None, t_grid=(), far=None):
        self.name = name
        self.about = about
        self._link = link          # (sender, peer) -> distribution text
        self.store_write = store_write
        self.t_grid = list(t_grid)  # ms after the ack at which reads are measured
        self.far = far             # the node that is "far" or "slow", if any

    def rules(self, node):
        """The failpoint rules of one node (one per line)."""
        lines = [f"rpc.send@{peer}=delay({self._link(node, peer)})"
                 for peer in NODES if peer != node]
        if self.store_write:
            lines.append(f"store.write=delay({self.store_write})")
        return lines


def _uniform(lo, hi):
    return lambda a, b: f"uniform({lo},{hi})"


def _one_far(near, far_dist, far_node="n5"):
    return lambda a, b: far_dist if far_node in (a, b) else near


PROFILES = {
    "lan": Profile(
        "lan", "one rack: every link 0.1-0.5 ms, uniform",
        _uniform(0.1, 0.5), t_grid=(0, 0.25, 0.5, 1, 2, 5)),
    "ssd": Profile(
        "ssd", "SSD-like replicas: links exp(0.5 ms), each apply exp(2 ms) "
        "(W long, A, R, S short, as LinkedIn's SSD cluster in the PBS paper)",
        lambda a, b: "exp(0.5)", store_write="exp(2)", t_grid=(0, 1, 2, 5, 10, 20)),
    "wan": Profile(
        "wan", "n5 across a wide-area link: links to and from n5 normal(40, 5) ms, "
        "the others uniform 0.1-0.5 ms",
        _one_far("uniform(0.1,0.5)", "normal(40,5)"), t_grid=(0, 5, 20, 40, 60, 100),
        far="n5"),
    "slow": Profile(
        "slow", "one slow replica: links to and from n5 pareto(2 ms, shape 1.5) "
        "(a heavy tail), the others uniform 0.1-0.5 ms",
        _one_far("uniform(0.1,0.5)", "pareto(2,1.5)"), t_grid=(0, 2, 5, 10, 20, 50),
        far="n5"),
}
