"""Every paper figure and table the harness reproduces: id -> sweeps, drawing function, setting.

The ids, what each item measures and the paper's setting follow docs/paper.md "Experiments" and
the paper's section 4 and appendices B and D (``paper_setting``: what a run must match for its
item to be called paper-scale). Figures 5, 6 and 11-19 (samples, reconstructions,
interpolations) are image grids that the ``artifacts`` evaluator writes into run folders;
they are not plots of metrics and have no entry here.

Each item is fed by its CPU-scale study (``sweeps/<study>.yaml``, MNIST and a small convnet,
minutes on 2 cores; REPRODUCTION.md) and by the paper-scale sweep (``sweeps/paper/<study>.yaml``,
named ``paper_<study>``, GPUs); a sweep writes ``results/<name>/``, and every scale that has
results is drawn, labelled with its scale.
"""

from __future__ import annotations

from harness.figures import benchmark, components, plots, tables
from harness.figures.base import CPU_SCALE, PAPER_SCALE, Item, Setting, SweepRef
from harness.figures.generic import PlotSpec, ReadAt, spec_draw

# The figures that are plots of logged metrics: named uses of python -m harness.plot's machinery.
FIG2_LEFT = PlotSpec(
    "curves", ("latent_swd", "latent_sphere_swd"), hue=("method.name",), logy=True,
    titles=(("latent_swd", "sliced W2 to prior samples"), ("latent_sphere_swd", "spherical SW to Unif($S^{d-1}$)")))
FIG2_RIGHT = PlotSpec(
    "curves", ("image_swd",), hue=("method.name",), style="method.weight", panels="sweep", panel_width=6.0,
    ylabel="image SWD (×1e3, mean over pyramid levels)",
    notes=("SWD values depend on the mode (swd_pytorch ≈ 12× pggan) and on the number of images, so panels "
           "with different settings are not comparable.",))
# Fig. 4 reads FID where the test reconstruction error first reaches the paper's threshold (§4.2: 50 on
# CIFAR-10, twice its fully trained 25), scaled to the twin in sweeps/latent_dim.yaml and its pilot: 35.
FIG4 = PlotSpec("heatmap", ("fid",), x="method.weight", hue=("model.latent_dim",), panel_width=6.0, panel_height=4.6,
                read_at=ReadAt("test_recon", (("latent_dim", 35.0), ("paper_latent_dim", 50.0))))
FIG10 = PlotSpec("heatmap", ("fid",), x="method.weight", hue=("method.tau",), panel_width=6.0, panel_height=4.6)

FULL_DATA = (Setting("data.train_limit", (None,)), Setting("data.test_limit", (None,)))
FID_10K = (Setting("eval.fid.num_samples", at_least=10000),)  # "FID always on the test set with 10,000 samples"
# the study has no paper counterpart; its "paper scale" would be the paper's CelebA setting
COMPONENTS_SETTING = (Setting("data.name", ("celeba",)), Setting("model.arch", ("a2",)),
                      Setting("train.epochs", at_least=200), Setting("data.train_limit", (None,)))
COMPONENTS_CHOICES = ("not in the paper: one λ for every method (the CPU studies' centre point: λ = 1000, τ = 0.1, m = 0.99, K = 3,700)",)


ITEMS: dict[str, Item] = {item.id: item for item in [
    Item(
        "fig2_left", "figure", "Fig. 2 (left): latent matching alone",
        "SWD between the latents of the synthetic data and uniform-sphere samples per epoch, with the "
        "reconstruction term removed; MoCA vs Sinkhorn, SWD, MMD (section 4.1)",
        (SweepRef("synthetic_latent", PAPER_SCALE),),
        spec_draw(FIG2_LEFT),
        (Setting("data.name", ("synthetic",)), Setting("data.num_points", (1000,)),
         Setting("data.input_dim", (100,)), Setting("model.arch", ("mlp",)),
         Setting("model.latent_dim", (128,)), Setting("model.prior", ("sphere",)),
         Setting("train.latent_only", (True,)), Setting("train.epochs", at_least=80)),
        ("the MLP's hidden width, the learning rate and each method's λ are lost in the paper's text",),
    ),
    Item(
        "fig2_right", "figure", "Fig. 2 (right): image-space SWD per epoch",
        "Laplacian-pyramid SWD between test images and generated samples from epoch 0 on; MoCA vs WAE-MMD "
        "for several λ (section 4.1; paper: CIFAR-10, A2, every 5 epochs, swd-pytorch)",
        (SweepRef("convergence", CPU_SCALE), SweepRef("convergence_matched", CPU_SCALE), SweepRef("paper_convergence", PAPER_SCALE, "sweeps/paper/convergence.yaml")),
        spec_draw(FIG2_RIGHT),
        (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a2",)), Setting("model.latent_dim", (128,)),
         Setting("train.epochs", at_least=100), *FULL_DATA),
        ("the λ values are lost in the paper's text",),
    ),
    Item(
        "fig3", "figure", "Fig. 3: singular values of the latents for several λ",
        "singular values of the latent matrix of 10,000 training images, MoCA with several λ (section 4.2)",
        (SweepRef("lambda", CPU_SCALE), SweepRef("paper_lambda", PAPER_SCALE, "sweeps/paper/lambda.yaml")),
        plots.fig3,
        (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a1", "a2")),
         Setting("eval.num_samples", at_least=10000), Setting("data.train_limit", (None,))),
        ("the architecture and training length are not stated for this experiment",),
    ),
    Item(
        "fig4", "figure", "Fig. 4: FID over latent dimension × λ",
        "FID over latent dimension × λ (λ from 100 to 144,000, log scale), each run trained until its "
        "reconstruction error reaches 50 (section 4.2)",
        (SweepRef("latent_dim", CPU_SCALE), SweepRef("paper_latent_dim", PAPER_SCALE, "sweeps/paper/latent_dim.yaml")),
        spec_draw(FIG4),
        (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a1", "a2")), *FULL_DATA, *FID_10K),
        ("dataset assumed CIFAR-10 (the text ties the error of 50 to the fully trained error of 25)",
         "FID is read at the first evaluation with test reconstruction error at or below the threshold "
         "(50 at paper scale; 35 for the CPU twin), from runs evaluated every few epochs up to a cap"),
    ),
    Item(
        "fig7", "figure", "Fig. 7: t-SNE of MNIST test latents",
        "t-SNE of test-set latents, MoCA vs hyperspherical VAE (appendix B: MLP encoder 3 hidden layers, "
        "decoder 2, width 128, latent 6, Adam lr 1e-3, 25 epochs)",
        (SweepRef("mnist_tsne", CPU_SCALE), SweepRef("paper_mnist_tsne", PAPER_SCALE, "sweeps/paper/mnist_tsne.yaml")),
        plots.fig7,
        (Setting("data.name", ("mnist",)), Setting("model.arch", ("mlp",)), Setting("model.latent_dim", (6,)),
         Setting("model.hidden", ("[128, 128, 128]",)), Setting("model.decoder_hidden", ("[128, 128]",)),
         Setting("optim.lr", (0.001,)), Setting("train.epochs", at_least=25), *FULL_DATA),
        ("S-VAE: λ = 1 (negative ELBO with a Gaussian decoder of variance 1/2), t-SNE of its posterior mean "
         "directions; the paper does not state its likelihood",),
    ),
    Item(
        "fig8", "figure", "Fig. 8: final reconstruction loss vs λ",
        "reconstruction loss at the end of training vs λ; larger λ helps (appendix D.1; CIFAR-10, A2)",
        (SweepRef("lambda", CPU_SCALE), SweepRef("paper_lambda", PAPER_SCALE, "sweeps/paper/lambda.yaml")),
        plots.fig8,
        (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a2",)), Setting("train.epochs", at_least=100),
         Setting("data.train_limit", (None,))),
    ),
    Item(
        "fig9", "figure", "Fig. 9: FID vs λ per input size",
        "FID over λ for CelebA-HQ downscaled to several sizes, one residual block removed per halving "
        "(appendix D.2; the full data behind Table 4)",
        (SweepRef("input_size", CPU_SCALE), SweepRef("paper_input_size", PAPER_SCALE, "sweeps/paper/input_size.yaml")),
        plots.fig9,
        (Setting("data.name", ("celeba_hq",)), Setting("model.arch", ("resnet_hq",)),
         Setting("train.epochs", at_least=400), *FULL_DATA, *FID_10K),
    ),
    Item(
        "fig10", "figure", "Fig. 10: FID over temperature τ × λ",
        "FID over temperature τ × λ, 50 epochs (appendix D.4)",
        (SweepRef("temperature", CPU_SCALE), SweepRef("paper_temperature", PAPER_SCALE, "sweeps/paper/temperature.yaml")),
        spec_draw(FIG10),
        (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a1", "a2")), Setting("train.epochs", at_least=50),
         *FULL_DATA, *FID_10K),
        ("dataset assumed CIFAR-10 (appendix D.4 does not name it)",),
    ),
    Item(
        "table1", "table", "Table 1: FID on CelebA",
        "FID on CelebA: WAE-MMD, WAE-GAN, Sinkhorn AE, SWAE, CWAE (cited from their papers), MoCA-A1, MoCA-A2",
        (SweepRef("methods", CPU_SCALE), SweepRef("paper_methods", PAPER_SCALE, "sweeps/paper/methods.yaml")),
        tables.method_table(tables.PAPER_TABLE1),
        (Setting("data.name", ("celeba",)), Setting("model.arch", ("a1", "a2")), Setting("train.epochs", at_least=200),
         *FULL_DATA, *FID_10K),
    ),
    Item(
        "table2", "table", "Table 2: FID on CIFAR-10",
        "FID on CIFAR-10: WAE-MMD, MoCA-A1, MoCA-A2 (A1 40 epochs, A2 100 epochs)",
        (SweepRef("methods", CPU_SCALE), SweepRef("paper_methods_cifar10", PAPER_SCALE, "sweeps/paper/methods_cifar10.yaml")),
        tables.method_table(tables.PAPER_TABLE2),
        (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a1", "a2")), Setting("train.epochs", at_least=40),
         *FULL_DATA, *FID_10K),
    ),
    Item(
        "table3", "table", "Table 3: FID vs base momentum m",
        "FID vs the base momentum m of the momentum encoder (appendix D.3; CelebA, A2)",
        (SweepRef("momentum", CPU_SCALE), SweepRef("paper_momentum", PAPER_SCALE, "sweeps/paper/momentum.yaml")),
        tables.key_table("method.momentum", tables.PAPER_TABLE3),
        (Setting("data.name", ("celeba",)), Setting("model.arch", ("a2",)), Setting("train.epochs", at_least=200),
         *FULL_DATA, *FID_10K),
    ),
    Item(
        "table4", "table", "Table 4: best λ vs input size",
        "the λ of best FID for each input size, roughly proportional to the pixel count (appendix D.2)",
        (SweepRef("input_size", CPU_SCALE), SweepRef("paper_input_size", PAPER_SCALE, "sweeps/paper/input_size.yaml")),
        tables.table4,
        (Setting("data.name", ("celeba_hq",)), Setting("model.arch", ("resnet_hq",)),
         Setting("train.epochs", at_least=400), *FULL_DATA, *FID_10K),
    ),
    Item(
        "table5", "table", "Table 5: FID vs queue size K",
        "FID vs the queue (dictionary) size K (appendix D.5; CelebA, A2)",
        (SweepRef("queue", CPU_SCALE), SweepRef("paper_queue", PAPER_SCALE, "sweeps/paper/queue.yaml")),
        tables.key_table("method.queue_size", tables.PAPER_TABLE5),
        (Setting("data.name", ("celeba",)), Setting("model.arch", ("a2",)), Setting("train.epochs", at_least=200),
         *FULL_DATA, *FID_10K),
    ),
    # ---- beyond the paper
    Item(
        "moca_components", "figure", "MoCA's components as ablations (beyond the paper)",
        "which part of MoCA does the work: MoCA vs in-batch negatives, online keys, m = 0, Wang & Isola's "
        "uniformity loss (with / without queue), WAE-MMD and the plain AE; final metrics per case",
        (SweepRef("moca_components", CPU_SCALE),),
        components.components_figure,
        COMPONENTS_SETTING,
        COMPONENTS_CHOICES,
    ),
    Item(
        "table_moca_components", "table", "MoCA's components as ablations (beyond the paper), table",
        "the numbers of the moca_components figure: mean ± sd over seeds per case",
        (SweepRef("moca_components", CPU_SCALE),),
        components.components_table,
        COMPONENTS_SETTING,
        COMPONENTS_CHOICES,
    ),
]}

BENCH_SWEEPS = (SweepRef("benchmark", CPU_SCALE),
                SweepRef("paper_benchmark", PAPER_SCALE, "sweeps/paper/benchmark.yaml"))
BENCH_SETTING = (Setting("data.name", ("cifar10",)), Setting("model.arch", ("a2",)),
                 Setting("train.epochs", at_least=100), Setting("data.train_limit", (None,)))
BENCH_NOTE = ("not in the paper: the paper compares methods at one shared λ; here every method gets the same "
              "random-search budget, selected on a validation split (issue 12; Lucic et al. 2018)",)

ITEMS.update({item.id: item for item in [
    Item(
        "bench_budget", "figure", "Benchmark: best validation metric vs number of trials",
        "per method, the best validation metric among k random-search trials against k (mean and 95 % band "
        "over random orders of the trials)",
        BENCH_SWEEPS, benchmark.bench_budget, BENCH_SETTING, BENCH_NOTE,
    ),
    Item(
        "bench_time", "figure", "Benchmark: best validation metric vs cumulative training time",
        "per method, the best validation metric against the training time spent on its trials (equal wall-clock)",
        BENCH_SWEEPS, benchmark.bench_time, BENCH_SETTING, BENCH_NOTE,
    ),
    Item(
        "bench_table", "table", "Benchmark: test metric at tuned settings vs at a fixed λ",
        "per method, the test metric (mean and 95 % interval over seeds) at the settings selected on the "
        "validation split, beside the same methods at one fixed λ",
        BENCH_SWEEPS, benchmark.bench_table, BENCH_SETTING, BENCH_NOTE,
    ),
]})

IDS = list(ITEMS)
