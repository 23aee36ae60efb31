"""BibTeX of the papers a model card cites: ICD, the CRD benchmark, and the paper of each baseline loss."""

from __future__ import annotations

ICD = """@article{giakoumoglou2024invariant,
  title   = {Invariant Consistency for Knowledge Distillation},
  author  = {Giakoumoglou, Nikolaos and Stathaki, Tania},
  journal = {arXiv preprint arXiv:2407.11802},
  year    = {2024}
}"""

CRD = """@inproceedings{tian2020contrastive,
  title     = {Contrastive Representation Distillation},
  author    = {Tian, Yonglong and Krishnan, Dilip and Isola, Phillip},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2020}
}"""

# Loss registry name -> BibTeX of the paper that introduced it.
METHOD_CITATIONS: dict[str, str] = {
    "icd": ICD,
    "crd": CRD,
    "kd": """@article{hinton2015distilling,
  title   = {Distilling the Knowledge in a Neural Network},
  author  = {Hinton, Geoffrey and Vinyals, Oriol and Dean, Jeff},
  journal = {arXiv preprint arXiv:1503.02531},
  year    = {2015}
}""",
    "fitnet": """@inproceedings{romero2015fitnets,
  title     = {FitNets: Hints for Thin Deep Nets},
  author    = {Romero, Adriana and Ballas, Nicolas and Kahou, Samira Ebrahimi and Chassang, Antoine and
               Gatta, Carlo and Bengio, Yoshua},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2015}
}""",
    "at": """@inproceedings{zagoruyko2017paying,
  title     = {Paying More Attention to Attention: Improving the Performance of Convolutional Neural
               Networks via Attention Transfer},
  author    = {Zagoruyko, Sergey and Komodakis, Nikos},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2017}
}""",
    "sp": """@inproceedings{tung2019similarity,
  title     = {Similarity-Preserving Knowledge Distillation},
  author    = {Tung, Frederick and Mori, Greg},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2019}
}""",
    "cc": """@inproceedings{peng2019correlation,
  title     = {Correlation Congruence for Knowledge Distillation},
  author    = {Peng, Baoyun and Jin, Xiao and Liu, Jiaheng and Zhou, Shunfeng and Wu, Yichao and Liu, Yu and
               Li, Dongsheng and Zhang, Zhaoning},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2019}
}""",
    "vid": """@inproceedings{ahn2019variational,
  title     = {Variational Information Distillation for Knowledge Transfer},
  author    = {Ahn, Sungsoo and Hu, Shell Xu and Damianou, Andreas and Lawrence, Neil D. and Dai, Zhenwen},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2019}
}""",
    "rkd": """@inproceedings{park2019relational,
  title     = {Relational Knowledge Distillation},
  author    = {Park, Wonpyo and Kim, Dongju and Lu, Yan and Cho, Minsu},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2019}
}""",
    "pkt": """@inproceedings{passalis2018learning,
  title     = {Learning Deep Representations with Probabilistic Knowledge Transfer},
  author    = {Passalis, Nikolaos and Tefas, Anastasios},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2018}
}""",
    "ab": """@inproceedings{heo2019knowledge,
  title     = {Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden Neurons},
  author    = {Heo, Byeongho and Lee, Minsik and Yun, Sangdoo and Choi, Jin Young},
  booktitle = {AAAI Conference on Artificial Intelligence},
  year      = {2019}
}""",
    "ft": """@inproceedings{kim2018paraphrasing,
  title     = {Paraphrasing Complex Network: Network Compression via Factor Transfer},
  author    = {Kim, Jangho and Park, SeongUk and Kwak, Nojun},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2018}
}""",
    "fsp": """@inproceedings{yim2017gift,
  title     = {A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer
               Learning},
  author    = {Yim, Junho and Joo, Donggyu and Bae, Jihoon and Kim, Junmo},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2017}
}""",
    "nst": """@article{huang2017like,
  title   = {Like What You Like: Knowledge Distill via Neuron Selectivity Transfer},
  author  = {Huang, Zehao and Wang, Naiyan},
  journal = {arXiv preprint arXiv:1707.01219},
  year    = {2017}
}""",
    "dkd": """@inproceedings{zhao2022decoupled,
  title     = {Decoupled Knowledge Distillation},
  author    = {Zhao, Borui and Cui, Quan and Song, Renjie and Qiu, Yiyu and Liang, Jiajun},
  booktitle = {IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2022}
}""",
}


def citations_for(term_names: list[str]) -> list[str]:
    """ICD and CRD first (the method and the benchmark this project follows), then each term's own paper."""
    out = [ICD, CRD]
    for name in term_names:
        bib = METHOD_CITATIONS.get(name.lower())
        if bib is not None and bib not in out:
            out.append(bib)
    return out
