"""Accounting: parameters, MAdds and peak RAM under the paper's convention, memory bounds, receptive fields, Pareto fronts and the paper-vs-ours tables."""
