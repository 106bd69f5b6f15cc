"""Accounting: parameters, MAdds and peak RAM under the paper's convention, memory bounds, receptive
fields (one rule for sliding windows, :mod:`.windows`), Pareto fronts and the paper-vs-ours tables."""
