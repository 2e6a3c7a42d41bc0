"""Conversions between the engine's files and what Scipion's own viewers read."""

import os

import gemmi

SCIPION_ATTRIBUTES = "_scipion_attributes."


def addScipionAttributes(cifPath, attrName, column, recipient="atoms"):
    """Copy a per-atom ``_atom_site.<column>`` of an mmCIF file into Scipion's attribute loop.

    Scipion's attribute viewers read ``_scipion_attributes`` (name, recipient, specifier,
    value) with specifiers ``CHAIN:RESNUM@ATOM`` for atoms.  The file is rewritten through a
    temporary name.  Returns the number of values written.
    """
    doc = gemmi.cif.read(cifPath)
    block = doc.sole_block()
    def column_of(*tags):
        for tag in tags:
            values = list(block.find_values("_atom_site." + tag))
            if values:
                return values
        raise ValueError("%s has no _atom_site.%s column" % (cifPath, tags[0]))

    values = column_of(column)
    chains = column_of("auth_asym_id", "label_asym_id")
    seqs = column_of("auth_seq_id", "label_seq_id")
    atoms = column_of("auth_atom_id", "label_atom_id")
    icodes = list(block.find_values("_atom_site.pdbx_PDB_ins_code")) or ["?"] * len(values)
    specs = ["%s:%s%s@%s" % (c, s, "" if i in ("?", ".") else i, gemmi.cif.as_string(a))
             for c, s, i, a in zip(chains, seqs, icodes, atoms)]
    keep = [k for k, v in enumerate(values) if v not in ("?", ".")]
    block.find_mmcif_category(SCIPION_ATTRIBUTES).erase()
    loop = block.init_mmcif_loop(SCIPION_ATTRIBUTES, ["name", "recipient", "specifier", "value"])
    quoted = gemmi.cif.quote(attrName)
    for k in keep:
        loop.add_row([quoted, recipient, gemmi.cif.quote(specs[k]), values[k]])
    tmp = cifPath + ".part"
    doc.write_file(tmp)
    os.replace(tmp, cifPath)
    return len(keep)
