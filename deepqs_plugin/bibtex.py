# -*- coding: utf-8 -*-
"""
@article{Zhu2017,
  title = {A deep convolutional neural network approach to single-particle recognition in cryo-electron microscopy},
  author = {Zhu, Yanan and Ouyang, Qi and Mao, Youdong},
  journal = {BMC Bioinformatics},
  volume = {18},
  pages = {348},
  year = {2017},
  doi = {http://dx.doi.org/10.1186/s12859-017-1757-y}
}

@article{Li2022,
  title = {PickerOptimizer: pruning false positives of automatic particle pickers},
  note = {Title abbreviated; see the journal for the full reference},
  author = {Li and Chen and Gao and Li and Wan and Zhang},
  journal = {Journal of Computational Biology},
  volume = {29},
  number = {10},
  pages = {1117--1131},
  year = {2022}
}

@article{Pintilie2020,
  title = {Measurement of atom resolvability in cryo-EM maps with Q-scores},
  author = {Pintilie, Grigore and Zhang, Kaiming and Su, Zhaoming and Li, Shanshan and Schmid, Michael F. and Chiu, Wah},
  journal = {Nature Methods},
  volume = {17},
  pages = {328--334},
  year = {2020},
  doi = {http://dx.doi.org/10.1038/s41592-020-0731-1}
}

@article{DeepQs,
  title = {DeepQs: local quality assessment of cryo-EM density map by deep learning map-model fit score},
  author = {DeepQs Authors},
  journal = {Journal of Structural Biology},
  year = {n.d.},
  note = {Local Q-score prediction from the density map alone; see the journal for authors and year}
}

@article{Sorzano2022,
  title = {Image processing tools for the validation of CryoEM maps},
  author = {Sorzano, Carlos Oscar S. and others},
  journal = {Faraday Discussions},
  volume = {240},
  pages = {210--227},
  year = {2022},
  doi = {http://dx.doi.org/10.1039/D2FD00059H}
}
"""
