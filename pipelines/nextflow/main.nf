#!/usr/bin/env nextflow
/*
 * mambadna as a Nextflow pipeline: pretrain a DNA language model on one
 * genome, fine-tune it to tell the species of --genomes apart, and classify
 * each read file of --reads.
 *
 *   nextflow run pipelines/nextflow -profile cpu,docker \
 *       --genomes 'apes/*.fa' --pretrain_genome apes/human.fa --reads 'reads/*.fq' --outdir results
 *
 * Each genome file is one species, labelled by its name up to the first dot.
 */
nextflow.enable.dsl = 2

include { MAMBADNA_PRETRAIN } from './modules/local/mambadna/pretrain/main'
include { MAMBADNA_FINETUNE } from './modules/local/mambadna/finetune/main'
include { MAMBADNA_CLASSIFY } from './modules/local/mambadna/classify/main'

workflow {
    if (!params.genomes || !params.reads) {
        error "give --genomes 'DIR/*.fa' (one file per species) and --reads 'DIR/*.fq'"
    }
    ch_genomes = Channel.fromPath(params.genomes, checkIfExists: true).collect()
    ch_pretrain = params.pretrain_genome
        ? Channel.fromPath(params.pretrain_genome, checkIfExists: true)
        : ch_genomes.map { files -> files.sort { it.name }[0] }
    ch_versions = Channel.empty()

    MAMBADNA_PRETRAIN(ch_pretrain.map { genome -> [ [ id: genome.simpleName ], genome ] })
    ch_versions = ch_versions.mix(MAMBADNA_PRETRAIN.out.versions)

    MAMBADNA_FINETUNE(
        MAMBADNA_PRETRAIN.out.model,
        ch_genomes.map { files -> [ [ id: 'species' ], files ] }
    )
    ch_versions = ch_versions.mix(MAMBADNA_FINETUNE.out.versions)

    MAMBADNA_CLASSIFY(
        Channel.fromPath(params.reads, checkIfExists: true).map { reads -> [ [ id: reads.simpleName ], reads ] },
        MAMBADNA_FINETUNE.out.model.first()
    )
    ch_versions = ch_versions.mix(MAMBADNA_CLASSIFY.out.versions)

    ch_versions.unique().collectFile(name: 'versions.yml', storeDir: "${params.outdir}/pipeline_info")
}
