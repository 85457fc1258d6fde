"""The plain-PyTorch BYOL step the training benchmarks compare against (not a benchmark itself).

What a reader writes by hand: two views through the online network and the predictor, the target
under no_grad, the symmetrised cosine loss, an SGD step and the EMA update."""
import copy
import torch, torch.nn.functional as F


def cos_loss(p, z):
    "BYOL's loss 2 − 2 cos(p, z), averaged over the batch."
    return (2 - 2 * F.cosine_similarity(p, z, dim=-1)).mean()


def plain_byol_step(online, predictor, opt, *, ema):
    """step(x1, x2): one BYOL step of `online` and `predictor` (optimised by `opt`) against an
    EMA target (rate `ema`) started as a copy of `online`."""
    target = copy.deepcopy(online).requires_grad_(False)
    po, pt = list(online.parameters()), list(target.parameters())

    def step(x1, x2):
        f1, f2 = online(x1), online(x2)
        with torch.no_grad():
            z1, z2 = target(x1), target(x2)
        loss = cos_loss(predictor(f1), z2) + cos_loss(predictor(f2), z1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(pt, po, 1 - ema)
    return step


def plain_step_for(model, cfg):
    """The plain step on deep copies of a byoltheory BYOL's online network and predictor, with
    the optimiser a reader writes for `cfg` (SGD with momentum; the predictor's lr scaled by
    alpha_p and its own weight decay)."""
    online, pred = copy.deepcopy(model.online), copy.deepcopy(model.predictor)
    opt = torch.optim.SGD([
        dict(params=list(online.parameters()), weight_decay=cfg.wd),
        dict(params=list(pred.parameters()), lr=cfg.lr * cfg.alpha_p, weight_decay=cfg.pred_wd)
    ], lr=cfg.lr, momentum=cfg.momentum)
    if hasattr(pred, 'attach'): pred.attach(opt)  # DirectPred moves at the optimiser's step
    return plain_byol_step(online, pred, opt, ema=cfg.ema)
